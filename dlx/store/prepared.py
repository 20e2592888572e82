"""Statements compiled once per dialect and run with the driver's own SQL, for what a page of runs runs again
and again: its name lookups, its runs' params, tags and final metrics (`rows`: on the DBAPI cursor, for columns
the driver returns as they are) and the kept page itself (`processed_rows`: through the connection, so the
engine's events see it, with its columns' result processors: JSON, times).

SQLAlchemy's execution of a statement (cache key, parameters, Row objects) costs 0.1-0.3 ms: on a page of
50 runs of a 1,000-run store, as much as the statements themselves.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ClauseElement, Connection
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    """One statement, compiled for each dialect it meets; `rows(conn, values)` runs it with its bound values."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, SQLCompiler] = {}
        self._processors: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def rows(self, conn: Connection, values: Mapping[str, Any] | None = None) -> list[tuple]:
        """Its rows as the driver returns them, run on the DBAPI cursor."""
        compiled, args = self._compiled_for(conn, values)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(compiled.string, args)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def processed_rows(self, conn: Connection) -> list[tuple]:
        """Its rows with each column converted as SQLAlchemy would (JSON decoded, times parsed on SQLite)."""
        compiled, args = self._compiled_for(conn, None)
        dialect = conn.dialect
        processors = self._processors.get(dialect.name)
        if processors is None:
            processors = self._processors[dialect.name] = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in getattr(self.statement, "selected_columns", ())]
        rows = conn.exec_driver_sql(compiled.string, args).fetchall()
        if not any(processors):
            return [tuple(row) for row in rows]
        return [tuple(value if process is None else process(value) for process, value in zip(processors, row))
                for row in rows]

    def _compiled_for(self, conn: Connection, values: Mapping[str, Any] | None) -> tuple[SQLCompiler, Any]:
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            with self._lock:  # IN lists rendered now: the statement's values are fixed
                built = self.statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
                assert isinstance(built, SQLCompiler)  # a statement's, not DDL's
                compiled = self._compiled[dialect.name] = built
        params = compiled.construct_params(values)
        if compiled.positional:
            assert compiled.positiontup is not None  # a positional dialect's statement lists its parameters
            return compiled, tuple(params[name] for name in compiled.positiontup)
        return compiled, params
