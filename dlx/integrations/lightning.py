"""`lightning.Trainer(logger=DlxLogger())`: a PyTorch Lightning fit as a dlx run, through Lightning's Logger
API: hyperparameters as params, every logged metric at its global step, the run's status at `finalize`
(failed with the exception, cancelled on Ctrl-C), and ModelCheckpoint's files recorded as artifacts.
Given `input` (a registered data set), the trained module is stored at the end of a successful fit as a logged
model (dlx.tracking.models), rebuilt as `ItsClass(**hparams)`, so the Explain page explains it on `input`."""
from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from dlx import settings
from dlx.errors import DlxError
from dlx.tracking import Cancelled, Run, start_run
from dlx.tracking.models import log_model
from dlx.training.checkpoints import copy_checkpoint, relative

ARTIFACT_KIND = "lightning_checkpoint"  # Lightning's .ckpt files are pickles: indexed, never loaded by dlx


class DlxLogger(Logger):
    """Logs to a run of `store` (default: the configured one), created at the first thing logged.

    `input`: the registered data set (image, table or text) the module takes; the fitted module is then kept
    for the Explain page, rebuilt there by its class from `save_hyperparameters()`'s values (checked when the
    fit starts: a class at the top level of an importable module, hyperparameters that are JSON values).
    """

    def __init__(self, experiment: str = "default", name: str | None = None, store: Any = None,
                 input: str | None = None):
        super().__init__()
        self._experiment, self._name, self._store, self._input = experiment, name, store, input
        self.run: Run | None = None
        self._module: Any = None  # the LightningModule being fitted, kept when `input` is given
        self._builder: tuple[str, dict[str, Any]] = ("", {})
        self._ended = False
        self._indexed: set[str] = set()  # the checkpoint files indexed at the last save

    @property
    def name(self) -> str:
        return self._experiment

    @property
    def version(self) -> int | str:
        return self.experiment.id

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The dlx run (started on first use)."""
        if self.run is None:
            self.run = start_run(self._experiment, self._name, config={"source": "lightning"}, store=self._store)
        return self.run

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        flat = _flatten_dict(_convert_params(params))
        plain = (str, int, float, bool, type(None), list, tuple)
        self.experiment.log_params({k: v if isinstance(v, plain) else str(v) for k, v in flat.items()})

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        if self._ended:  # a test() after fit(): the finished run's summary takes it
            self.experiment.update_summary(values)
        else:
            self.experiment.log_metrics(values, step=step or 0)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning hands every logger the module as the fit starts: kept (with how to rebuild it) when
        `input` asks for the model, and checked now rather than after the training."""
        if self._input is not None:
            self._builder = module_builder(model)
            self._module = model

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Each top-k and last checkpoint ModelCheckpoint keeps, linked (or copied) into the run's folder; those it
        has deleted since are dropped."""
        run = self.experiment
        folder = settings.run_dir(run.id) / "lightning"
        folder.mkdir(parents=True, exist_ok=True)
        best = getattr(checkpoint_callback, "best_model_path", "")
        kept: dict[str, Any] = dict(getattr(checkpoint_callback, "best_k_models", {}) or {})
        if getattr(checkpoint_callback, "last_model_path", ""):
            kept.setdefault(checkpoint_callback.last_model_path, None)
        entries = []
        for path, score in kept.items():
            source = Path(path)
            if not source.is_file():
                continue
            target = folder / source.name
            if not (target.exists() and os.path.samefile(source, target)):  # (linked at an earlier save)
                copy_checkpoint(source, target)
            meta = {"score": None if score is None else float(score), "best": path == best,
                    "monitor": getattr(checkpoint_callback, "monitor", None), "original": str(source)}
            entries.append((ARTIFACT_KIND, source.name, relative(target), meta))
        if entries:
            run.log_artifacts(entries)
        dropped = self._indexed - {name for _, name, _, _ in entries}  # ModelCheckpoint deleted them: so do we
        if dropped:
            run.remove_artifacts(ARTIFACT_KIND, sorted(dropped))
            for name in dropped:
                (folder / name).unlink(missing_ok=True)
        self._indexed = {name for _, name, _, _ in entries}

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning says "success" or "failed"; the exception being handled tells failed from cancelled."""
        if self.run is None or self._ended:
            return
        self._ended = True
        if status in ("success", "finished"):
            if self._module is not None and self._input is not None:
                builder, kwargs = self._builder
                log_model(self.run, self._module, builder, self._input, **kwargs)
            self.run.finish("succeeded")
            return
        exc = sys.exc_info()[1]
        if isinstance(exc, (KeyboardInterrupt, Cancelled)):
            self.run.finish("cancelled", "cancelled by request")
        elif exc is not None:
            self.run.finish("failed", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            self.run.finish("failed", f"Lightning ended the fit: {status}")


def module_builder(module: Any) -> tuple[str, dict[str, Any]]:
    """The import path of `module`'s class and its initial hyperparameters, which rebuild it; a DlxError when
    the Explain page could not (a class of `__main__` or inside a function, hyperparameters not JSON values)."""
    cls = type(module)
    builder = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "." in cls.__qualname__ or "<" in cls.__qualname__:
        raise DlxError(f"input: DlxLogger keeps the model to rebuild as {builder}(**hparams), which another "
                       "process cannot import: define the LightningModule at the top level of a module of yours "
                       "(not the script you run, nor inside a function)", field="input")
    hparams = {k: v for k, v in dict(getattr(module, "hparams_initial", {}) or {}).items() if k != "_class_path"}
    try:
        json.dumps(hparams)
    except (TypeError, ValueError) as err:
        raise DlxError(f"input: the module's hyperparameters rebuild it on the Explain page and must be JSON "
                       f"values (numbers, strings, lists...): {err}; pass other objects with "
                       "save_hyperparameters(ignore=[...]) and build them in __init__", field="input") from None
    return builder, hparams
