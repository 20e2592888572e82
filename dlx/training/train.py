"""The training loop: set up, then for each epoch train, evaluate, log and checkpoint.

Device-agnostic: bf16 autocast on CUDA, data sets that fit held on the device, otherwise
pinned host memory with asynchronous copies. Per-step losses stay on the device and are
read back and logged as one window (all its step losses, one lr and one throughput point) every
`LOG_EVERY_S` seconds of training, every `LOG_MAX_STEPS` steps and at the end, so logging never
stalls the GPU and costs a tiny model one call per window, not one per epoch or per few steps.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn

from dlx import settings
from dlx.config import RunConfig
from dlx.data import DataBundle, Split, load_dataset
from dlx.data.streaming import FolderSplit
from dlx.data.text_tokens import crop, tokenize_split
from dlx.errors import DlxError, Pruned
from dlx.models import build_model
from dlx.tracking import Run
from dlx.training.checkpoint_writer import CheckpointWriter, Snapshot, Weights
from dlx.training.checkpoints import checkpoint_metadata
from dlx.training.devices import resolve_device
from dlx.training.kept import checkpoint_name
from dlx.training.label_noise import LabelNoise, plant_label_noise, record_label_noise

if TYPE_CHECKING:
    from dlx.models.text_base import TextClassifier

EpochHook = Callable[[int, dict[str, float]], str | None]  # (epoch, its metrics) -> why to stop, or None
LOG_EVERY_S = 0.5  # seconds: the tracker writes every second, so a live chart loses nothing
LOG_MAX_STEPS = 1000  # bounds the losses held on the device between two readbacks
ON_DEVICE_LIMIT = 2 * 1024**3  # bytes: data sets smaller than this live on the GPU


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def permute_labels(bundle: DataBundle, seed: int) -> DataBundle:
    """The training split's labels in a seeded random order (validation and test keep the true ones),
    so the model can only memorise: it trains to chance (Adebayo et al. 2018's data randomisation)."""
    if isinstance(bundle.train, FolderSplit):
        raise DlxError("label_permutation: image folders read from disk cannot permute their labels; "
                       "use a data set held in memory", field="label_permutation")
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))
    return dataclasses.replace(bundle, train=dataclasses.replace(bundle.train, y=bundle.train.y[order]))


def make_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # frozen layers (freeze_layers) stay out
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(config: RunConfig, optimizer, total_steps: int):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    return None


def place(split: Split | FolderSplit, device: torch.device) -> Split | FolderSplit:
    """Move a split to the device when it fits, else pin it for fast asynchronous copies."""
    if device.type != "cuda" or isinstance(split, FolderSplit):
        return split
    size = split.x.element_size() * split.x.numel()
    mask = split.attention_mask
    if size < ON_DEVICE_LIMIT:
        return dataclasses.replace(split, x=split.x.to(device), y=split.y.to(device),
                                   attention_mask=None if mask is None else mask.to(device))
    return dataclasses.replace(split, x=split.x.pin_memory(), y=split.y.pin_memory(),
                               attention_mask=None if mask is None else mask.pin_memory())


def batch_inputs(split: Split, index: torch.Tensor | slice, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The model's inputs for these rows: (x,) for images and tables; (token ids, attention mask)
    for tokenised text, cropped to the batch's longest sentence (dynamic padding)."""
    x = split.x[index].to(device, non_blocking=True)
    if split.attention_mask is None:
        return (x,)
    return crop(x, split.attention_mask[index].to(device, non_blocking=True))


def tokenize_bundle(bundle: DataBundle, model: nn.Module) -> DataBundle:
    """Text bundles with every split tokenised by the model's own tokenizer (cached); others as they are."""
    if bundle.meta.kind != "text":
        return bundle
    text = cast("TextClassifier", model)
    train, val, test = (tokenize_split(split, text.tokenizer, text.max_length)
                        for split in (bundle.train, bundle.val, bundle.test))
    return dataclasses.replace(bundle, train=train, val=val, test=test)


def forward_pass(model: nn.Module, config: RunConfig, device: torch.device) -> Callable[..., torch.Tensor]:
    """The model's forward giving float32 logits: under bf16 autocast on CUDA (when `amp`), else the
    model itself (no context manager or cast per step: a tiny model's step is ~60 us)."""
    if device.type != "cuda" or not config.amp:
        return model

    def forward(*inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return model(*inputs).float()

    return forward


@torch.no_grad()
def evaluate(model: nn.Module, split: Split | FolderSplit, device: torch.device, config: RunConfig,
             classes: int, batch: int = 256, confusion: bool = True) -> tuple[float, float, np.ndarray | None]:
    """Mean loss, accuracy and (when asked) the confusion matrix (rows: true class, columns: predicted).

    Each batch's sums stay on the device and are read back once, added in float64 (as Python floats
    added them before). Batches of 256 stay in CPU caches: on digits they evaluate about 20% faster
    than 1024. Each epoch's validation skips the confusion matrix: it costs a third of a tiny model's
    evaluation and only the test split's is shown.
    """
    model.eval()
    losses: list[torch.Tensor] = []
    counts: list[torch.Tensor] = []  # per batch: the confusion counts, or the number right
    forward = forward_pass(model, config, device)
    for inputs, y in _batches(split, batch, device):
        logits = forward(*inputs)
        losses.append(nn.functional.cross_entropy(logits, y, reduction="sum"))
        if confusion:
            counts.append(torch.bincount(y * classes + logits.argmax(1), minlength=classes**2))
        else:
            counts.append((logits.argmax(1) == y).sum())
    model.train()
    seen = len(split)
    total_loss = _total(losses, torch.float64)
    if not confusion:
        return total_loss / max(1, seen), _total(counts, torch.int64) / max(1, seen), None
    flat = (torch.stack(counts).sum(0) if counts else torch.zeros(classes**2, dtype=torch.int64))
    matrix = flat.view(classes, classes).cpu().numpy()
    return total_loss / max(1, seen), float(np.trace(matrix)) / max(1, seen), matrix


def _total(parts: list[torch.Tensor], dtype: torch.dtype) -> float:
    """The sum of per-batch scalars, read back once (a small validation split is one batch: no adds)."""
    if not parts:
        return 0.0
    if len(parts) == 1:
        return parts[0].item()
    return torch.stack(parts).to(dtype).sum().item()


def train(config: RunConfig, run: Run, on_epoch: EpochHook | None = None) -> dict[str, float]:
    """Train one run end to end; returns the final metrics (also written to the run's summary).

    `on_epoch` (a search's trial: dlx.search.pruning) is given each epoch's metrics and may answer why to
    stop: the loop then ends as early stopping does (test scored, checkpoints kept) and raises Pruned.
    """
    seed_everything(config.seed)
    device = resolve_device(config.device)
    bundle: DataBundle = load_dataset(config.dataset, config.seed, config.val_fraction,
                                      config.test_fraction, config.download)
    if config.label_permutation:
        bundle = permute_labels(bundle, config.seed)
    noise: LabelNoise | None = None
    if config.label_noise:
        bundle, noise = plant_label_noise(bundle, config.label_noise, config.seed)
    meta = bundle.meta
    model = build_model(config.model, meta, **config.model_options).to(device)
    bundle = tokenize_bundle(bundle, model)
    train_split, val_split = place(bundle.train, device), place(bundle.val, device)
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(config, model)
    schedule = make_schedule(config, optimizer, total_steps)
    loss_fn = nn.CrossEntropyLoss()
    folder = settings.run_dir(run.id) / "checkpoints"
    folder.mkdir(exist_ok=True)

    device_name = _device_name(device)
    with run.transaction(with_points=True):  # written with the first points: one write, not two
        # A run that keeps no checkpoints over training logs the params it always did.
        off = set() if config.checkpoint_every else {"checkpoint_every", "keep_checkpoints"}
        run.log_params(config.model_dump(exclude={"name", "experiment", "sweep", *off}))
        run.update_summary({"total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
                            "epochs": config.epochs, "device": str(device),
                            "parameters": sum(p.numel() for p in model.parameters()),
                            "train_size": len(train_split), "classes": list(meta.classes)},
                           device=device_name)
        if noise is not None:
            record_label_noise(run, noise)
    print(f"run {run.id}: {config.dataset}/{config.model} on {device_name}, {total_steps} steps", flush=True)

    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    best_value, best_epoch, waited = None, 0, 0
    pruned: str | None = None  # why a search's pruner stopped this trial
    best_checkpoint: Snapshot | None = None
    step = 0
    pending: list[torch.Tensor] = []
    window_samples = 0
    model.train()
    # Checkpoints are written (and indexed) in the background: see dlx.training.checkpoint_writer.
    writer = CheckpointWriter(run, folder, keep=config.keep_checkpoints)
    weights = Weights(model)
    config_json = config.model_dump_json()  # every checkpoint carries it: serialised once
    forward = forward_pass(model, config, device)
    grad_clip = config.grad_clip
    window_start = paused_at = time.perf_counter()
    try:
        for epoch in range(1, config.epochs + 1):
            window_start += time.perf_counter() - paused_at  # evaluation and checkpoints are not training time
            # The epoch's train loss and accuracy are running sums over its batches, kept on the
            # device (no sync per step): a second pass over the train split would cost ~30%.
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for inputs, y in _batches(train_split, config.batch_size, device, generator):
                logits = forward(*inputs)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                step += 1
                size = y.shape[0]
                window_samples += size
                detached = loss.detach()
                pending.append(detached)
                loss_sum += detached * size
                correct += (logits.argmax(1) == y).sum()
                if len(pending) == LOG_MAX_STEPS or time.perf_counter() - window_start >= LOG_EVERY_S:
                    window_start = _log_steps(run, pending, step, optimizer, window_samples, window_start)
                    pending, window_samples = [], 0

            paused_at = time.perf_counter()
            train_loss, train_acc = loss_sum.item() / len(train_split), correct.item() / len(train_split)
            val_loss, val_acc, _ = evaluate(model, val_split, device, config, meta.num_classes, confusion=False)
            epoch_metrics = {"epoch": epoch, "train_loss_epoch": train_loss, "train_acc": train_acc,
                             "val_loss": val_loss, "val_acc": val_acc}
            run.log_metrics(epoch_metrics, step=step)
            print(f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f} acc {train_acc:.4f}, "
                  f"val loss {val_loss:.4f} acc {val_acc:.4f}", flush=True)

            value = val_loss if config.early_stopping_metric == "val_loss" else -val_acc
            improved = best_value is None or value < best_value
            if improved:
                best_value, best_epoch, waited = value, epoch, 0
            else:
                waited += 1
            patience = config.early_stopping_patience
            stopping = bool(patience) and patience is not None and waited >= patience
            pruned = on_epoch(epoch, epoch_metrics) if on_epoch is not None else None
            stopping = stopping or pruned is not None
            # Weights are copied only for a checkpoint that will be written: the best when it
            # improves (it waits in memory), the last when a write is due and after the final epoch.
            last = epoch == config.epochs or stopping or writer.due()
            every = config.checkpoint_every  # kept over training: every N epochs and the final one
            kept = bool(every) and (epoch % every == 0 or epoch == config.epochs or stopping)
            if improved or last or kept:
                checkpoint = weights.snapshot(checkpoint_metadata(config_json, epoch, epoch_metrics))
                best_checkpoint = checkpoint if improved else best_checkpoint
                writer.submit(checkpoint, {"epoch": epoch} if last else None,
                              {"epoch": epoch, config.early_stopping_metric: abs(value)} if improved else None,
                              (checkpoint_name(epoch), epoch_metrics) if kept else None)
            if stopping:
                print(pruned or f"early stopping after epoch {epoch}: no better "
                      f"{config.early_stopping_metric} for {waited} epochs", flush=True)
                break
        if pending:
            _log_steps(run, pending, step, optimizer, window_samples, window_start + time.perf_counter() - paused_at)
        assert best_checkpoint is not None  # the first epoch always improves on nothing
        model.load_state_dict(best_checkpoint.tensors)  # the best file's own tensors, not read back
        test_loss, test_acc, confusion = evaluate(model, place(bundle.test, device), device, config,
                                                  meta.num_classes)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()  # what the finished epochs wrote is kept; the training's error is the one raised
        raise
    final = {"test_loss": test_loss, "test_acc": test_acc, "val_loss": val_loss, "val_acc": val_acc,
             "best_epoch": best_epoch, "epochs_run": epoch}
    run.log_metrics({"test_loss": test_loss, "test_acc": test_acc}, step=step)
    with run.transaction():  # the best and last checkpoints on disk, then indexed with the final summary
        writer.close()
        run.update_summary({**final, "confusion_matrix": confusion.tolist() if confusion is not None else None})
    print(f"test: loss {test_loss:.4f} acc {test_acc:.4f} (best epoch {best_epoch})", flush=True)
    if pruned is not None:
        raise Pruned(pruned)
    return final


def _batches(split: Split | FolderSplit, batch_size: int, device: torch.device,
             shuffle: torch.Generator | None = None):
    """(model inputs, y) batches on the device: rows of in-memory tensors (the fast path), or a
    DataLoader's batches decoded by worker processes for a set read from disk; shuffled when given
    a generator."""
    if isinstance(split, FolderSplit):
        for x, y in split.loader(batch_size, device, shuffle=shuffle is not None, generator=shuffle):
            yield (x.to(device, non_blocking=True),), y.to(device, non_blocking=True)
        return
    order = None if shuffle is None else torch.randperm(len(split), generator=shuffle).to(split.x.device)
    # Rows already on the device (every CPU run, small sets on a GPU) are only indexed: no copy
    # calls per step, as in a plain loop.
    resident = split.attention_mask is None and split.x.device == device and split.y.device == device
    for start in range(0, len(split), batch_size):
        index = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
        if resident:
            yield (split.x[index],), split.y[index]
        else:
            yield batch_inputs(split, index, device), split.y[index].to(device, non_blocking=True)


def _log_steps(run: Run, pending: list[torch.Tensor], step: int, optimizer, samples: int,
               window_start: float) -> float:
    """Read back a window of step losses at once; fail on the first non-finite one."""
    losses = torch.stack(pending).tolist()
    first = step - len(losses) + 1
    for offset, value in enumerate(losses):
        if not math.isfinite(value):
            raise DlxError(f"loss diverged at step {first + offset} (loss={value}); "
                           "try a lower learning rate or gradient clipping", field="lr")
    now = time.perf_counter()
    lr = optimizer.param_groups[0]["lr"]
    rate = samples / max(now - window_start, 1e-9)
    run.log_series("train_loss", losses, first)
    run.log_metrics({"lr": lr, "samples_per_s": rate}, step=step)
    return now


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"{device} ({threads} thread{'s' if threads > 1 else ''})"
