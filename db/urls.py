"""What is said about a store without opening it: its URL as shown (password hidden), the notice naming
it, the schema's newest revision. No SQLAlchemy unless a URL holds credentials, so that `dlx runs`' plain
path (dlx.store.plain) does without it."""
from __future__ import annotations

import os
from pathlib import Path

from dlx import settings


def shown_url(url: str) -> str:
    """The URL as shown to users: any password in it hidden."""
    if "@" not in url:  # no user, so no password: shown as given (as SQLAlchemy renders it)
        return url
    from sqlalchemy import make_url  # SQLAlchemy: only where a URL holds credentials

    return make_url(url).render_as_string(hide_password=True)


def database_label() -> str:
    """The store's URL as shown to users (`dlx runs`, the sidebar): any password in it hidden."""
    return shown_url(settings.database_url())


def store_notice(url: str | None = None) -> str:
    """The one line `dlx ui`, `dlx runs` and a script's first run print to say which store they use
    (a store chosen by default is not where a user may think), and a `./dlx-data` store left beside."""
    url = url or settings.database_url()
    if url == settings.database_url() and not os.environ.get("DLX_DATABASE_URL"):
        line = f"dlx store: {settings.home()} (sqlite)"
    else:
        line = f"dlx store: {shown_url(url)}"
    if (local := settings.stray_local_store()) is not None:
        line += (f"; {local} holds another store, not used: set DLX_HOME=./dlx-data to use it, "
                 f"or move its contents into {settings.home()}")
    return line


def head_revision() -> str:
    """The newest migration's revision, read from the file names (`NNNN_what.py` holds revision 'NNNN',
    a single chain: tests/store check both against Alembic's own reading), without importing Alembic."""
    versions = Path(__file__).parent / "migrations" / "versions"
    return max(path.name.split("_", 1)[0] for path in versions.glob("[0-9]*_*.py"))
