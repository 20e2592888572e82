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


SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar", ".gz", ".bz2", ".xz", ".csv")


def name_from(source: str) -> str:
    """A data set's name from its archive, folder or file name ("My Pets.tar.gz" -> "my-pets"), made valid
    and, when taken, numbered ("my-pets-2"); what the Data page uses when no name is typed."""
    base = Path(source.strip().rstrip("/\\")).name
    for suffix in SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[:-len(suffix)]
            break
    name = re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-_")[:56] or "data"
    if not name[0].isalnum():
        name = f"data-{name}"
    taken, candidate, n = set(DATASETS), name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def name_or_default(name: str, source: str) -> str:
    """The name typed, else one from the source's file or folder name (`name_from`)."""
    return name.strip() or name_from(source)
