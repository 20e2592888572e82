"""The explanation cache's rows in one store (`store.explanations`): safetensors bytes by key.

Keys (what determines a result) are made in dlx.explain.cache; this is only where they live.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sqlalchemy import select
from torch import Tensor

from db.models import Explanation, utcnow

if TYPE_CHECKING:
    from dlx.store import Store

Stored = tuple[dict[str, Any], dict[str, Tensor]]  # (meta, tensors)


class Explanations:
    """Stored explanations and job results of one store, read and written in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load_many(self, keys: list[str]) -> dict[str, Stored]:
        """Every stored entry among these keys, in one query."""
        if not keys:
            return {}
        with self.store.connect() as conn:
            rows = conn.execute(select(Explanation.key, Explanation.meta, Explanation.data)
                                .where(Explanation.key.in_(keys))).all()
        return {key: (meta, load_tensors(data)) for key, meta, data in rows}

    def load(self, key: str) -> Stored | None:
        return self.load_many([key]).get(key)

    def save(self, key: str, run_id: int, method: str, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        """Store an entry; if another process stored the same key first, theirs stays (same content)."""
        self.save_many(run_id, {method: {key: (meta, tensors)}})

    def save_many(self, run_id: int, entries: dict[str, dict[str, Stored]]) -> None:
        """Store many entries, per method, in ONE statement (a commit per sample, or per method of a
        page's gallery, cost more than Captum). A key another process stored meanwhile keeps theirs
        (same content): the insert skips it."""
        rows = [{"key": key, "run_id": run_id, "method": method, "meta": meta, "created_at": utcnow(),
                 "data": save_tensors({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})}
                for method, stored in entries.items() for key, (meta, tensors) in stored.items()]
        if not rows:
            return
        with self.store.engine.begin() as conn:
            conn.execute(self.store.upsert(Explanation.__table__).on_conflict_do_nothing(index_elements=["key"]), rows)
