"""The store: everything dlx keeps in its database, behind one `Store` per engine.

`runs` reads runs and composes the rest into `Store`; `edits` changes them; `query` is the filter
grammar, `reduction` reduces histories in SQL, `summaries` keeps each run's summary rows, `bulk`
writes many rows at a time, `ingest` is a run's writes as tracking batches them, `points` reads parts
of a metric series; `StoreError` is any failure of the database; `user_sets` holds users' data set
rows; `queue` (the jobs table), `workers` (their heartbeats) and `explanations` (the explanation
cache) are built when a store first uses them; `run_info` (a run as shown) and `plain` (`dlx runs`'
page read without SQLAlchemy) import no SQLAlchemy.

The names below are imported on first use, so that `dlx.store.plain` and `dlx.store.run_info` can be
imported without SQLAlchemy (0.2 s of a command's CPU).
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlx.store.errors import StoreError as StoreError
    from dlx.store.errors import StoreUnreachable as StoreUnreachable
    from dlx.store.run_info import RunInfo as RunInfo
    from dlx.store.run_info import decode_param as decode_param
    from dlx.store.runs import FINAL_STATES as FINAL_STATES
    from dlx.store.runs import History as History
    from dlx.store.runs import Store as Store
    from dlx.store.runs import default_store as default_store
    from dlx.store.runs import history_of as history_of
    from dlx.store.runs import unreadable as unreadable

_HOMES = {"StoreError": "errors", "StoreUnreachable": "errors", "RunInfo": "run_info", "decode_param": "run_info",
          "FINAL_STATES": "runs", "History": "runs", "Store": "runs", "default_store": "runs",
          "history_of": "runs", "unreadable": "runs"}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """`from dlx.store import Store` imports the module that holds it, on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dlx.store' has no attribute {name!r}")
    return getattr(import_module(f"dlx.store.{home}"), name)
