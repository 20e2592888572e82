"""What every user data set's import shares: the name it may take, the folder it is kept in, the
scratch folder it is checked in first."""
from __future__ import annotations

import re
from pathlib import Path

from dlx import settings
from dlx.data.registry import DATASETS
from dlx.errors import DlxError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
FOLDER = "user_datasets"  # under the data directory: the sets whose files dlx keeps


def scratch() -> Path:
    """Where uploads are written and extracted before they are checked (same disk as the kept sets)."""
    return settings.home() / "tmp"


def check_name(name: str) -> str:
    """A new data set's name: short, lowercase, not taken by a built-in or another user set."""
    name = name.strip()
    if not NAME.match(name):
        raise DlxError(f"name: {name!r} is not a valid data set name; use lowercase letters, digits, '-' "
                       "and '_' (up to 63), starting with a letter or digit", field="name")
    if name in DATASETS:
        raise DlxError(f"name: a data set called {name!r} exists already; choose another name", field="name")
    return name
