"""Engines for any SQLAlchemy URL, one per URL per process; SQLite gets WAL, a busy timeout and foreign keys."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from db.urls import database_label as database_label  # re-exported: callers name db.engine's
from db.urls import head_revision as head_revision
from db.urls import store_notice as store_notice
from dlx import settings
from dlx.errors import DlxError

_engines: dict[str, Engine] = {}
_upgraded: set[str] = set()
_lock = threading.Lock()
_disposers: list[Callable[[], None]] = []  # caches holding engines (dlx.store's stores), cleared with them
# Key of the PostgreSQL advisory lock held while upgrading the schema (any constant of our own).
SCHEMA_LOCK_KEY = 0x646C78  # "dlx"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def get_engine(url: str | None = None, upgrade_schema: bool = True) -> Engine:
    """One engine per URL per process, brought to the latest schema revision on first use."""
    url = url or settings.database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
                _check_folder(engine)
                event.listen(engine, "connect", _sqlite_pragmas)
                _watch_file(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        if upgrade_schema and url not in _upgraded:
            if schema_revision(engine) != head_revision():
                upgrade(engine)
            _upgraded.add(url)
    return engine


def _check_folder(engine: Engine) -> None:
    """A SQLite file in a folder that does not exist is named here, not by sqlite's bare "unable to
    open database file". The folder is not created: a mistyped path would otherwise start an empty
    store and the user's runs would seem gone."""
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().absolute().parent
        if not folder.is_dir():
            raise DlxError(f"database: the folder {folder} of the SQLite file {database} does not exist; "
                           "create it or correct the URL (DLX_DATABASE_URL)", field="database")


class DatabaseReplaced(DlxError):
    """The SQLite file an engine opened is no longer the file at its path (deleted, moved or replaced)."""


def _watch_file(engine: Engine) -> None:
    """Refuse every use of the engine once its SQLite file is not the one it opened.

    A file deleted under open connections still takes their writes, into an inode nothing can
    read back (1,500 points accepted, all gone); a new connection would create an empty file
    there (or open a file put in its place) and write into it. The file's identity (device and
    inode) is taken at the first connection, and compared with the path's at every checkout
    (one stat) and before every new connection, which is therefore never opened on another file.
    """
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser().absolute()
    opened: list[tuple[int, int]] = []  # the identity of the file first opened (one entry once known)

    def identity() -> tuple[int, int] | None:
        try:
            found = path.stat()
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def check(*_args) -> None:
        if opened and identity() != opened[0]:
            now = "no file is at that path now" if identity() is None else "another file is at that path now"
            raise DatabaseReplaced(
                f"database: the SQLite file {path} was deleted or replaced while this process used it "
                f"({now}); nothing more is written or read here: restore the file, or start again to use "
                "what is at that path", field="database")

    def first_opened(*_args) -> None:
        if not opened and (found := identity()) is not None:
            opened.append(found)

    event.listen(engine, "do_connect", check)
    event.listen(engine, "connect", first_opened)
    event.listen(engine, "checkout", check)


def schema_revision(engine: Engine) -> str | None:
    """The database's schema revision in one query; None where it has none yet (a new database)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:  # no alembic_version table: a database dlx has not created yet
        return None


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every Alembic migration up to `revision`, one process at a time.

    Two processes opening a fresh database both saw no schema and both created it, and one died
    on "table already exists" (SQLite runs DDL outside the transaction). The upgrade now runs
    under a lock across processes, and Alembic reads the current revision inside it: whoever
    comes second finds the schema done and does nothing.
    """
    from alembic import command

    config = alembic_config(engine)
    with _schema_file_lock(engine), engine.begin() as connection:
        _lock_schema(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextlib.contextmanager
def _schema_file_lock(engine: Engine) -> Iterator[None]:
    """For a SQLite file: an exclusive flock on `<db file>.lock`, released when the block ends."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or not Path(database).parent.is_dir():
        yield  # nothing another process could share, or no folder: SQLite's own error names it
        return
    import fcntl

    lock_path = Path(database).with_name(Path(database).name + ".lock")
    try:
        lock_file = open(lock_path, "a")
    except OSError:  # a read-only (or full) disk: nobody can upgrade there, and reading needs no lock
        yield
        return
    with lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _lock_schema(connection: Connection) -> None:
    """On PostgreSQL, an advisory lock held until this transaction ends; other databases lock by file."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def dispose_all() -> None:
    """Close pooled connections (a forked or finished process must not reuse them)."""
    with _lock:
        for forget in _disposers:  # first: a cache may still write through its engine (dlx.store.explanations)
            forget()
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _upgraded.clear()


def on_dispose(forget: Callable[[], None]) -> None:
    """Call `forget` whenever `dispose_all` runs, before it closes the engines (a cache of objects bound to them)."""
    _disposers.append(forget)
