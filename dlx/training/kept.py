"""Checkpoints kept over training (`checkpoint_every`): their names and a run's list of them.

Torch-free, so the Runs page can list them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx import settings

if TYPE_CHECKING:
    from dlx.store import Store

PREFIX = "epoch-"


def checkpoint_name(epoch: int) -> str:
    """The index name of the checkpoint kept after `epoch` (its file is `<name>.safetensors`)."""
    return f"{PREFIX}{epoch:04d}"


@dataclass(frozen=True)
class KeptCheckpoint:
    """One kept checkpoint: its name, epoch, the epoch's metrics and its file."""

    name: str
    epoch: int
    metrics: dict[str, Any]
    path: Path
    size_bytes: int


def kept_checkpoints(store: Store, run_id: int) -> list[KeptCheckpoint]:
    """A run's kept checkpoints whose files are there, by epoch (none for a run without `checkpoint_every`)."""
    kept = []
    for artifact in store.artifacts(run_id, "checkpoint"):
        if not artifact.name.startswith(PREFIX):
            continue
        path = settings.stored_path(artifact.path)
        if not path.exists():
            continue
        metrics = {k: v for k, v in (artifact.meta or {}).items() if k != "epoch"}
        epoch = int((artifact.meta or {}).get("epoch", artifact.name.removeprefix(PREFIX)))
        kept.append(KeptCheckpoint(artifact.name, epoch, metrics, path, path.stat().st_size))
    return sorted(kept, key=lambda k: k.epoch)
