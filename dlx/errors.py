"""The one exception type for mistakes a user can make and fix."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound="BaseModel")


class DlxError(Exception):
    """A user-facing error: the message names the field (or thing) and what to do."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    @classmethod
    def from_validation(cls, err: ValidationError) -> DlxError:
        """pydantic's first complaint (a job payload's), naming its field."""
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return cls(f"{where}: {first['msg']}", field=where)


def validated(model: type[M], payload: Mapping[str, Any]) -> M:
    """`model(**payload)` (a job's task from its payload), pydantic's first complaint raised as a DlxError."""
    # pydantic: imported by the job that reads a payload, not by every importer of the errors
    from pydantic import ValidationError

    try:
        return model(**payload)
    except ValidationError as err:
        raise DlxError.from_validation(err) from None


class Pruned(Exception):  # noqa: N818  (an outcome, like Cancelled, not a fault)
    """A search trial's training stopped by the search's pruner: its run ends `pruned`, keeping what it logged."""
