"""The runs export's CSV: text parameters as themselves, every parameter read back as it was."""
from __future__ import annotations

import csv
import io

from dlx.store import default_store
from dlx.tracking import start_run
from dlx.views import export


def _param_cells(text: str) -> dict[str, str]:
    return {row[2]: row[4] for row in csv.reader(io.StringIO(text)) if row[1] == "param"}


def test_text_parameters_are_written_without_json_quotes_and_read_back():
    store = default_store()
    with start_run(handle_signals=False) as run:
        run.log_params({"dataset": "digits", "optimizer": "adam", "lr": 0.01, "widths": [32, 64], "flag": False})
    data = export.selection(store, [run.id])
    text = export.to_csv(data)
    cells = _param_cells(text)
    assert cells["dataset"] == "digits" and cells["optimizer"] == "adam"  # not """digits"""
    assert '"""digits"""' not in text
    assert cells["lr"] == "0.01" and cells["widths"] == "[32, 64]" and cells["flag"] == "false"
    assert export.from_csv(text)[run.id]["params"] == data[run.id]["params"]


def test_text_that_reads_as_json_keeps_its_quotes():
    tricky = {"one": "1", "yes": "true", "nan": "NaN", "quoted": '"digits"', "spaced": " 2", "list": "[1]",
              "none": None, "number": 1}
    data = {7: {"run": {}, "params": tricky, "final": {}, "history": {}}}
    text = export.to_csv(data)
    cells = _param_cells(text)
    assert cells["one"] == '"1"' and cells["yes"] == '"true"' and cells["nan"] == '"NaN"'
    assert cells["number"] == "1" and cells["none"] == "null"
    assert export.from_csv(text)[7]["params"] == tricky  # a string "1" stays a string


def test_the_runs_tables_text_parameters_are_plain_text():
    from dlx.views.run_table import table_rows

    store = default_store()
    for optimizer in ("adam", "sgd"):
        store.create_run({"dataset": "digits", "model": "mlp", "optimizer": optimizer, "lr": 0.1})
    frame = table_rows(store, store.list_runs())
    assert sorted(frame["optimizer"]) == ["adam", "sgd"]  # what the table's own CSV download writes
    assert "adam" in frame.to_csv(index=False).splitlines()[2].split(",")
