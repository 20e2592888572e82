"""Users' data set rows (`store.user_sets`): written once checked, listed newest first, deleted on request."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Run, UserDataset
from dlx import settings
from dlx.errors import DlxError


@dataclass(frozen=True)
class UserSet:
    """A user data set's row, as pages and loaders read it."""

    name: str
    kind: str
    source: str
    path: Path
    owned: bool
    rows: int
    size_bytes: int
    classes: tuple[str, ...]
    checksum: str
    details: dict[str, Any]
    created_at: Any


class UserSets:
    """The user data set rows of one store (`store.user_sets`), read and written in its sessions."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self.session = session

    def add(self, name: str, kind: str, source: str, path: str, owned: bool, rows: int, size_bytes: int,
            classes: tuple[str, ...], checksum: str, details: dict[str, Any]) -> UserSet:
        """Write a checked data set's row; a name taken meanwhile is refused, not overwritten."""
        row = UserDataset(name=name, kind=kind, source=source, path=path, owned=owned, rows=rows,
                          size_bytes=size_bytes, classes=list(classes), checksum=checksum, details=details)
        try:
            with self.session() as s, s.begin():
                s.add(row)
        except IntegrityError:
            raise DlxError(f"name: a data set called {name!r} exists already; choose another name",
                           field="name") from None
        return _user_set(row)

    def all(self) -> list[UserSet]:
        """Every user data set, newest first."""
        with self.session() as s:
            return [_user_set(row) for row in s.scalars(select(UserDataset).order_by(UserDataset.id.desc()))]

    def runs_using(self, name: str) -> int:
        """How many runs were launched on data set `name`."""
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Run).where(Run.dataset == name)) or 0

    def delete(self, name: str) -> None:
        """Delete the row of data set `name` (its files are the caller's)."""
        with self.session() as s, s.begin():
            s.execute(delete(UserDataset).where(UserDataset.name == name))


def _user_set(row: UserDataset) -> UserSet:
    path = settings.stored_path(row.path) if row.owned else Path(row.path)
    return UserSet(row.name, row.kind, row.source, path, row.owned, row.rows, row.size_bytes,
                   tuple(row.classes), row.checksum, dict(row.details), row.created_at)
