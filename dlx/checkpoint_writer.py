"""Each epoch's checkpoints written and indexed in a background thread, off the training's critical path.

A checkpoint save plus its index commit costs about 3 ms: a small MLP's epoch waited that long for it,
39% of its training time. The training thread only copies the weights (they go on changing); one thread
writes. What waits is at most one 'last' and one 'best' snapshot: a newer one replaces an older one not
yet written (only the newest last and the newest best are ever read), so memory stays bounded however
fast the epochs. `close()` waits until both are on disk and indexed: the test split is scored with the
best checkpoint, and a run that fails keeps what its epochs wrote.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from dlx.checkpoints import copy_checkpoint, relative
from dlx.tracking import Run


@dataclass
class Snapshot:
    """One epoch's weights (CPU copies) and the metadata its checkpoint file carries."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


def snapshot(model: torch.nn.Module, metadata: dict[str, str]) -> Snapshot:
    """Copy the weights now: the training thread goes on changing them."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    return Snapshot(tensors, metadata)


Pending = tuple[Snapshot, dict[str, Any]]  # a snapshot and its index entry's meta


class CheckpointWriter:
    """Writes `last.safetensors` and `best.safetensors` of a run and indexes them, in the background."""

    def __init__(self, run: Run, folder: Path) -> None:
        self._run, self._folder = run, folder
        self._last: Pending | None = None
        self._best: Pending | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"checkpoints-{run.id}", daemon=True)
        self._thread.start()

    def submit(self, last: Snapshot, meta: dict[str, Any], best_meta: dict[str, Any] | None = None) -> None:
        """Queue this epoch's 'last' checkpoint (index meta `meta`); it is also the new 'best' when
        `best_meta` is given."""
        with self._cond:
            self._raise_error()
            self._last = (last, meta)
            if best_meta is not None:
                self._best = (last, best_meta)
            self._cond.notify_all()

    def close(self) -> None:
        """Wait until everything submitted is written and indexed; raise what the writing raised."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._last is not None or self._best is not None or self._closed)
                last, best, self._last, self._best = self._last, self._best, None, None
                if last is None and best is None:
                    return  # closed, nothing left
            try:
                self._write(last, best)
            except BaseException as err:  # noqa: BLE001  (handed to the training thread by submit/close)
                with self._cond:
                    self._error = err

    def _write(self, last: Pending | None, best: Pending | None) -> None:
        entries = []
        if last is not None:
            path = self._save(last[0], "last")
            entries.append(("checkpoint", "last", relative(path), last[1]))
        if best is not None:
            target = self._folder / "best.safetensors"
            if last is not None and best[0] is last[0]:  # the same epoch: a hard link, no second file
                copy_checkpoint(self._folder / "last.safetensors", target)
            else:
                self._save(best[0], "best")
            entries.append(("checkpoint", "best", relative(target), best[1]))
        self._run.log_artifacts(entries)

    def _save(self, checkpoint: Snapshot, name: str) -> Path:
        """Write to a temporary name, then rename: a reader never sees half a file."""
        path = self._folder / f"{name}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(checkpoint.tensors, str(tmp), metadata=checkpoint.metadata)
        tmp.replace(path)
        return path
