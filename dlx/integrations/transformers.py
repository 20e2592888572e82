"""`Trainer(..., callbacks=[DlxCallback()])` or `TrainingArguments(report_to="dlx")`: a Hugging Face Trainer's
training as a dlx run.

TrainingArguments and the model's config become params, every logging step's values (loss,
learning_rate, grad_norm, epoch, eval_* under their own names) metric points at the Trainer's global
step, and the model is stored with `save_pretrained` (safetensors, config, tokenizer) as the run's
checkpoint, with sentences from the eval set, so the Explain page explains it as a dlx text run.
"""
from __future__ import annotations

import inspect
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import integration_utils

from dlx import settings
from dlx.models.saved_pretrained import FORMAT, WEIGHTS, write_samples
from dlx.tracking import Cancelled, Run, start_run
from dlx.training.checkpoints import relative

# what `Trainer._inner_training_loop` (transformers 5.x) calls after on_train_begin: an exception out of
# any of them leaves train(); guarded when the callback came too late to guard train() itself
LOOP_STAGES = ("_evaluate", "_run_epoch", "_finalize_training")
MAX_SAMPLES = 100  # eval sentences kept beside the model for the Explain page
TEXT_COLUMNS = ("text", "sentence", "sentence1", "review", "content")
DEFAULT_PROJECT = "huggingface"  # TrainingArguments.project's default: not a name the user chose


class DlxCallback(TrainerCallback):
    """Records each `trainer.train()` as a run of `store` (default: the configured one).

    `experiment` defaults to TrainingArguments' `project` when set, else "default".
    `save_on_save` also stores the model at each of the Trainer's saves (checkpoint `step-N`);
    `samples` (texts, labels) are the sentences offered on the Explain page (default: up to 100
    of the eval set, their text column or their input_ids decoded).
    """

    def __init__(self, experiment: str | None = None, name: str | None = None, store: Any = None, save_model: bool = True, save_on_save: bool = False,
                 samples: tuple[Sequence[str], Sequence[int]] | None = None):
        self.experiment, self.name, self.store = experiment, name, store
        self.save_model, self.save_on_save, self.samples = save_model, save_on_save, samples
        self.run: Run | None = None
        self._ended = True  # whether `run` (if any) has ended: a new train() starts a new run
        self._trainer: Any = None
        self._last: dict[str, tuple[int, float]] = {}  # each metric's last (step, value)

    # -- the run's life ------------------------------------------------------------------------
    def on_init_end(self, args, state, control, **kwargs):
        """Wrap the Trainer's `train` so an exception or Ctrl-C ends the run failed or cancelled
        (the Trainer tells callbacks of neither)."""
        trainer = self._caller()
        if trainer is not None:
            self._trainer = weakref.proxy(trainer)
            self._guard(trainer, "train")

    def _caller(self) -> Any:
        """The Trainer whose callback handler holds this callback: a caller up the stack."""
        frame = inspect.currentframe()
        try:
            while frame is not None:
                owner = frame.f_locals.get("self")
                handler = getattr(owner, "callback_handler", None)
                if handler is not None and self in getattr(handler, "callbacks", ()):
                    return owner
                frame = frame.f_back
            return None
        finally:
            del frame

    def _guard(self, trainer: Any, method: str) -> None:
        """Replace `trainer.<method>` (on the instance) by one that ends the run on an exception out of it."""
        original = getattr(trainer, method)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                self._end(*_ending(exc))
                raise

        setattr(trainer, method, guarded)

    def _watch_late(self) -> None:
        """Added by `trainer.add_callback` after the Trainer was built (no on_init_end): the train() under way
        is past its own call, so the stages its loop calls next are guarded, and `train` for the next calls."""
        trainer = self._caller()
        if trainer is None:
            return
        self._trainer = weakref.proxy(trainer)
        for stage in LOOP_STAGES:
            if callable(getattr(trainer, stage, None)):
                self._guard(trainer, stage)
        self._guard(trainer, "train")

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self._ended:
            return
        if self._trainer is None:
            self._watch_late()
        # no "dataset": the Runs page draws a script's own metrics (loss, eval_*) as its main charts
        config = {"source": "transformers", "model": type(model).__name__ if model is not None else "transformers"}
        experiment = self.experiment or _project(args) or "default"
        self.run = start_run(experiment, self.name or _run_name(args), config=config, store=self.store)
        self._ended = False
        self._last.clear()
        params: dict[str, Any] = dict(args.to_sanitized_dict())
        model_config = getattr(model, "config", None)
        if model_config is not None:
            params.update({f"model.{k}": v for k, v in model_config.to_dict().items() if _plain(v)})
        self.run.log_params(params)

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        # `epoch` comes again with each eval's and the final logs: a point already logged is not repeated
        values = {k: float(v) for k, v in (logs or {}).items() if _number(v) and self._last.get(k) != (step, v)}
        if not values or self.run is None:
            return
        if not self._ended:
            self._last.update((k, (step, v)) for k, v in values.items())
            self.run.log_metrics(values, step=step)
        else:  # an evaluate() after train(): the finished run's summary takes it
            self.run.update_summary(values)

    def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.save_on_save and self.run is not None and model is not None:
            self._store(model, processing_class, f"step-{state.global_step:06d}", state.global_step)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.run is None or self._ended:
            return
        if self.save_model and model is not None:
            self._store(model, processing_class, "best", state.global_step, also="last")
        self._end("succeeded", None)

    # -- helpers -------------------------------------------------------------------------------
    def _end(self, status: str, error: str | None) -> None:
        if self.run is not None and not self._ended:
            self._ended = True
            self.run.finish(status, error)

    def _store(self, model: Any, tokenizer: Any, name: str, step: int, also: str | None = None) -> None:
        """save_pretrained into the run's folder (safetensors only), with the tokenizer and the sentences
        to explain, indexed as the run's checkpoint `name` (and `also`)."""
        assert self.run is not None
        folder = settings.run_dir(self.run.id) / ("model" if name == "best" else name)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(folder), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))
        texts, labels = self.samples or self._eval_samples(tokenizer)
        label_names = getattr(model.config, "id2label", None) or {}
        classes = [str(label_names.get(i, i)) for i in range(getattr(model.config, "num_labels", 0))]
        write_samples(folder, list(texts), list(labels), classes)
        meta = {"format": FORMAT, "step": step}
        path = relative(folder / WEIGHTS)
        self.run.log_artifacts([("checkpoint", n, path, meta) for n in (name, also) if n])

    def _eval_samples(self, tokenizer: Any) -> tuple[list[str], list[int]]:
        """Up to MAX_SAMPLES sentences and labels of the Trainer's eval (else train) set."""
        trainer = self._trainer
        data = None
        if trainer is not None:
            data = getattr(trainer, "eval_dataset", None) or getattr(trainer, "train_dataset", None)
        if isinstance(data, Mapping):  # several eval sets: the first
            data = next(iter(data.values()), None)
        texts: list[str] = []
        labels: list[int] = []
        if data is None or not hasattr(data, "__len__"):
            return texts, labels
        for i in range(min(len(data), MAX_SAMPLES)):
            row = data[i]
            if not isinstance(row, Mapping):
                continue
            text = next((row[c] for c in TEXT_COLUMNS if isinstance(row.get(c), str)), None)
            if text is None and tokenizer is not None and "input_ids" in row:
                text = tokenizer.decode(_ids(row["input_ids"]), skip_special_tokens=True)
            label = row.get("labels", row.get("label"))
            if text and label is not None and _number(label):
                texts.append(text)
                labels.append(int(label))
        return texts, labels


def _ids(values: Any) -> list[int]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _number(value: Any) -> bool:
    if hasattr(value, "ndim") and getattr(value, "ndim", 1) == 0 and hasattr(value, "item"):
        value = value.item()
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def _run_name(args: Any) -> str | None:
    """TrainingArguments' run_name, unless it is only the output folder (its default)."""
    name = getattr(args, "run_name", None)
    return None if not name or name == getattr(args, "output_dir", None) else str(name)


def _project(args: Any) -> str | None:
    """TrainingArguments' project, unless it is its default."""
    project = getattr(args, "project", None)
    return None if not project or project == DEFAULT_PROJECT else str(project)


def _ending(exc: BaseException) -> tuple[str, str]:
    """The run's end for an exception out of `train()`: Ctrl-C and dlx's cancel are cancelled, the rest failed."""
    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        return "cancelled", "cancelled by request"
    text = str(exc)
    return "failed", f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def register() -> None:
    """Let `TrainingArguments(report_to="dlx")` name DlxCallback: the Trainer looks each name up in
    transformers' INTEGRATION_TO_CALLBACK (it has no other registry), so the name is added there."""
    integration_utils.INTEGRATION_TO_CALLBACK.setdefault("dlx", DlxCallback)


register()
