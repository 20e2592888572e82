"""`dlx import tensorboard LOGDIR`: every folder under LOGDIR that holds event files is one run (named by
its path below LOGDIR, in an experiment named after LOGDIR), its scalars the run's metric histories with
their steps and wall times; read with tensorboard's own event reader."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlx.errors import DlxError
from dlx.importers.progress import ImportSummary, run_import
from dlx.store.imports import ForeignRun

if TYPE_CHECKING:
    from dlx.store import Store

PREFIX = "tensorboard:"
EVENTS = "events.out.tfevents.*"


def run_folders(logdir: Path) -> list[Path]:
    """The folders under `logdir` (itself included) that hold event files."""
    if not logdir.is_dir():
        raise DlxError(f"logdir: {logdir} is not a folder", field="logdir")
    folders = sorted({p.parent for p in logdir.rglob(EVENTS) if p.is_file()})
    if not folders:
        raise DlxError(f"logdir: no TensorBoard event files ({EVENTS}) under {logdir}", field="logdir")
    return folders


def import_tensorboard(store: Store, logdir: str, progress: bool = True) -> ImportSummary:
    """Import the scalars of every run folder under `logdir` not imported before (by its absolute path)."""
    root = Path(logdir).resolve()
    folders = {str(folder): folder for folder in run_folders(root)}
    return run_import(store, PREFIX, list(folders), lambda source: read_run(root, folders[source]), progress)


def read_run(root: Path, folder: Path) -> ForeignRun:
    """One folder's scalars (simple values, and TF2's scalar tensors) as a finished run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # only when importing
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    points: list[tuple[str, int, float, float]] = []
    tags = events.Tags()
    for tag in tags.get("scalars", []):
        points += [(tag, e.step, float(e.value), e.wall_time) for e in events.Scalars(tag)]
    for tag in tags.get("tensors", []):
        if events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            points += [(tag, e.step, float(tensor_util.make_ndarray(e.tensor_proto)), e.wall_time)
                       for e in events.Tensors(tag)]
    times = [p[3] for p in points]
    name = folder.relative_to(root).as_posix() if folder != root else root.name
    return ForeignRun(PREFIX + str(folder), root.name, name, "succeeded", min(times, default=None),
                      max(times, default=None), points=points, config={"source": "tensorboard"})
