"""The store: everything dlx keeps in its database, behind one `Store` per engine.

`runs` reads runs and composes the rest into `Store`; `edits` changes them; `query` is the filter
grammar, `reduction` reduces histories in SQL, `summaries` keeps each run's summary rows, `bulk`
writes many rows at a time, `ingest` is a run's writes as tracking batches them, `points` reads parts
of a metric series; `StoreError` is any failure of the database; `user_sets` holds users' data set
rows; `queue` (the jobs table), `workers` (their heartbeats) and `explanations` (the explanation
cache) are built when a store first uses them.
"""
from dlx.store.errors import StoreError, StoreUnreachable
from dlx.store.runs import FINAL_STATES, History, RunInfo, Store, decode_param, default_store, history_of, unreadable

__all__ = ["FINAL_STATES", "History", "RunInfo", "Store", "StoreError", "StoreUnreachable", "decode_param",
           "default_store", "history_of", "unreadable"]
