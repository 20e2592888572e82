"""The import loop every importer shares: skip what was imported before, write the rest, a progress
bar on stderr, and the counts for the summary line."""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlx.store.imports import ForeignRun, add_run, imported_sources

if TYPE_CHECKING:
    from dlx.store import Store


@dataclass
class ImportSummary:
    """What an import did: runs added and skipped (imported before), experiments and points written."""

    added: int = 0
    skipped: int = 0
    points: int = 0
    experiments: int = 0

    def line(self, what: str) -> str:
        return (f"imported {self.added} {what} runs ({self.points} metric points, {self.experiments} experiments); "
                f"{self.skipped} already imported, skipped")


def run_import(store: Store, prefix: str, sources: Sequence[str], read: Callable[[str], ForeignRun],
               progress: bool = True) -> ImportSummary:
    """Read and add each source not imported yet (`prefix` + source marks it), with a bar on stderr."""
    out = sys.stderr if progress else None
    done = imported_sources(store, prefix)
    summary = ImportSummary()
    experiments: set[str] = set()
    for i, source in enumerate(sources, 1):
        if prefix + source in done:
            summary.skipped += 1
        else:
            run = read(source)
            add_run(store, run)
            summary.added += 1
            summary.points += len(run.points)
            experiments.add(run.experiment)
        if out is not None:
            filled = 30 * i // max(len(sources), 1)
            out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {i}/{len(sources)} runs")
            out.flush()
    if out is not None and sources:
        out.write("\n")
    summary.experiments = len(experiments)
    return summary
