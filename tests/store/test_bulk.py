"""Many rows per SQLite INSERT: every row written once, in order, across full and partial chunks."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from dlx.store.bulk import MultiRow


def test_rows_are_written_in_order_across_chunks():
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE points (id INTEGER PRIMARY KEY, key TEXT, step INTEGER, value REAL)")
        insert = MultiRow("INSERT INTO points (key, step, value) VALUES (?, ?, ?)", 3)
        assert insert.chunk == 300
        rows = [("loss", step, step / 7) for step in range(701)]  # two full chunks and one of 101
        insert.execute(conn, rows)
        insert.execute(conn, [("acc", 0, None)])
        stored = conn.exec_driver_sql("SELECT key, step, value FROM points ORDER BY id").all()
    assert [tuple(row) for row in stored] == [*rows, ("acc", 0, None)]


def test_only_a_one_row_insert_of_that_many_values_is_taken():
    with pytest.raises(ValueError, match="one-row INSERT of 3"):
        MultiRow("INSERT INTO points (key, step) VALUES (?, ?)", 3)
    with pytest.raises(ValueError, match="one-row INSERT"):
        MultiRow("INSERT INTO points (a, b) VALUES (?, ?), (?, ?)", 2)
