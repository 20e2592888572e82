"""A run as pages and the CLI show it (`RunInfo`), and what reading one needs: no SQLAlchemy here, so that
`dlx runs`' plain path (dlx.store.plain) builds runs without importing it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# A run's note and its archived mark are tags under a reserved prefix: no schema change, and a filter
# (tag.dlx.archived) or export sees them like any tag. People's own tags may not use the prefix.
RESERVED_TAG_PREFIX = "dlx."
NOTE_TAG = "dlx.note"
ARCHIVED_TAG = "dlx.archived"
# Lists count the runs they match up to this many, then say "10,000+" (`Store.count_runs(bound=)`): an exact
# count of a filter matching most of 100,000 runs reads every match.
COUNT_BOUND = 10_000


@dataclass
class RunInfo:
    """A run as pages and the CLI show it."""

    id: int
    experiment: str
    name: str | None
    sweep: str | None
    status: str
    dataset: str | None
    model: str | None
    config: dict[str, Any]
    summary: dict[str, Any]
    device: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    job_id: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # final value of each metric

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or datetime.now(UTC).replace(tzinfo=None)  # db.models.utcnow
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def note(self) -> str:
        return self.tags.get(NOTE_TAG, "")

    @property
    def archived(self) -> bool:
        return ARCHIVED_TAG in self.tags

    @property
    def user_tags(self) -> dict[str, str]:
        """The tags people set (the reserved dlx.* ones left out)."""
        return {k: v for k, v in self.tags.items() if not k.startswith(RESERVED_TAG_PREFIX)}

    @property
    def title(self) -> str:
        """The run's name; else its data set and model; else (a script's unnamed run) "run N · experiment"."""
        if self.name:
            return self.name
        if self.dataset or self.model:
            return "/".join(part for part in (self.dataset, self.model) if part)
        return f"run {self.id} · {self.experiment}"

    @property
    def label(self) -> str:
        """How lists and legends name a run: "#N name" (never "None/None")."""
        return self.title if not (self.name or self.dataset or self.model) else f"#{self.id} {self.title}"


def decode_param(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


def counted(total: int, bound: int | None = None) -> str:
    """A bounded count as lists show it: "1,234", or "10,000+" where counting stopped past the bound."""
    bound = COUNT_BOUND if bound is None else bound
    return f"{bound:,}+" if total > bound else f"{total:,}"
