"""Checkpoints are safetensors files (never pickles), written atomically, loaded into registry models."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dlx import settings
from dlx.config import RunConfig
from dlx.data import load_dataset
from dlx.errors import DlxError
from dlx.models import build_model

if TYPE_CHECKING:
    from dlx.store import RunInfo, Store


def save_checkpoint(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def copy_checkpoint(source: Path, target: Path) -> None:
    """`target` becomes the same checkpoint as `source`, atomically: a hard link where the file
    system allows (no bytes copied; `source` is later replaced by rename, never rewritten in
    place, so the link keeps this epoch's weights), else a copy."""
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def load_run_model(store: Store, run_id: int, checkpoint: str = "best",
                   device: str | torch.device = "cpu") -> tuple[nn.Module, RunConfig]:
    """Rebuild a run's model from the registry and its config, and load its weights (eval mode)."""

    run = store.get_run(run_id)
    if run is None:
        raise DlxError(f"run: there is no run #{run_id}", field="run")
    path = store.checkpoint_path(run_id, checkpoint)
    if path is None:
        raise no_checkpoint(run, checkpoint)
    config = RunConfig(**run.config)
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    model = build_model(config.model, bundle.meta, **config.model_options)
    try:
        model.load_state_dict(read_weights(path, run_id))
    except RuntimeError as err:  # a readable file whose tensors are another model's
        raise DlxError(f"checkpoint: {path.name} of run #{run_id} does not fit its {config.model} model "
                       f"({str(err).splitlines()[0]})", field="checkpoint") from None
    return model.to(device).eval(), config


def no_checkpoint(run: RunInfo, checkpoint: str) -> DlxError:
    """Why a run has no checkpoint to explain, and how to get one: a script's run never has one (dlx
    cannot rebuild a model it did not train); a launched one has it after its first epoch."""
    if run.job_id is None and run.dataset is None:
        return DlxError(f"run: {run.label} was logged from a script and has no checkpoint: Explain rebuilds a "
                        "model dlx trained. To explain one, train it with dlx (the Launch page, or `dlx run "
                        "--dataset NAME --model NAME`; your own data as a data set on the Data page): its runs "
                        "save checkpoints after every epoch", field="run")
    return DlxError(f"run: {run.label} has no {checkpoint!r} checkpoint yet (status {run.status}); pick a run "
                    "that finished at least one epoch", field="run")


def read_weights(path: Path, run_id: int) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors; a truncated or foreign file is a DlxError naming it, not a traceback."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise DlxError(f"checkpoint: {path.name} of run #{run_id} cannot be read ({err}); the file is "
                       "damaged or not a safetensors checkpoint. Train the run again or delete it",
                       field="checkpoint") from None


def relative(path: Path) -> str:
    return str(path.resolve().relative_to(settings.home()))


def checkpoint_metadata(config_json: str, epoch: int, metrics: dict[str, float]) -> dict[str, str]:
    """What a checkpoint file carries: its run's config (`RunConfig.model_dump_json()`), epoch and metrics."""
    return {"config": config_json, "epoch": str(epoch), "metrics": json.dumps(metrics)}
