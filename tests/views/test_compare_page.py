"""The Compare page under streamlit.testing with 1,000 runs: paging, filters, the view from the URL, no exception."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dlx.errors import DlxError
from dlx.store import default_store
from dlx.store.edits import parse_tags
from dlx.tracking import Run
from dlx.views import compare

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def open_compare(**query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("caption", "info", "error") for e in getattr(at, kind))


def test_compare_pages_a_thousand_runs_and_compares_the_first_ten(thousand_runs):
    at = open_compare()
    assert "Runs 1–50 of 1,000" in captions(at)
    assert len(at.get("plotly_chart")) >= 1  # the overlaid curves of the default selection
    assert "of 3 parameters differ between these runs" in captions(at)


def test_the_url_reopens_a_filtered_sorted_view_of_chosen_runs(thousand_runs):
    a, b, c = thousand_runs[:3]
    at = open_compare(filter="lr <= 0.01 and val_acc >= 0", sort="val_acc", runs=f"{a},{b},{c}", metric="val_acc")
    assert at.text_input(key="compare.filter").value == "lr <= 0.01 and val_acc >= 0"
    assert at.selectbox(key="compare.metric").value == "val_acc"
    assert at.query_params["runs"] == f"{a},{b},{c}"
    assert len(at.get("plotly_chart")) == 3  # curves, parallel coordinates, scatter
    assert " of 1,000" not in captions(at)  # filtered


def test_a_bad_filter_says_where_without_an_exception(thousand_runs):
    at = open_compare(filter="lr < 0.01 and")
    assert "filter: expected a name (a run field, parameter or metric), found the end at position 14" in captions(at)


# -- a small sweep: x axes, groups, confusion matrices, tags, notes, archive, delete ---------------------------
def small_sweep() -> list[int]:
    """Four finished runs over lr (two each of 0.1 and 0.01), 2 epochs of 5 steps, with confusion matrices."""
    from dlx.tracking import start_run

    ids = []
    for i, lr in enumerate((0.1, 0.1, 0.01, 0.01)):
        run_id = default_store().create_run({"lr": lr, "seed": i}, sweep="grid", name=f"r{i}")
        with start_run(run_id=run_id, handle_signals=False) as run:
            run.log_params({"lr": lr, "seed": i})
            run.update_summary({"steps_per_epoch": 5, "confusion_matrix": [[3, 1], [0, 4]], "classes": ["a", "b"]})
            run.log_series("val_acc", [i + step / 10 for step in range(10)], 0)
        ids.append(run_id)
    return ids


def chart(at: AppTest, key: str) -> dict:
    [found] = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    return json.loads(found.proto.spec)


def axis(trace: dict, name: str) -> list[float]:
    import base64

    import numpy as np
    values = trace[name]
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_x_as_epoch_or_wall_time_and_a_sweep_grouped_by_a_parameter():
    ids = small_sweep()
    at = open_compare(runs=",".join(map(str, ids)), metric="val_acc", x="epoch", group="lr")
    lines = [t for t in chart(at, "compare.curves")["data"] if "name" in t]
    assert axis(lines[0], "x") == [step / 5 for step in range(10)]
    groups = {t["name"]: t for t in chart(at, "compare.grouped")["data"] if "name" in t}
    assert set(groups) == {"lr=0.1 (2 runs)", "lr=0.01 (2 runs)"}
    assert axis(groups["lr=0.01 (2 runs)"], "y") == pytest.approx([2.5 + step / 10 for step in range(10)])
    at.segmented_control(key="compare.x").set_value("wall time").run()
    assert at.query_params["x"] == "wall time"
    lines = [t for t in chart(at, "compare.curves")["data"] if "name" in t]
    wall = axis(lines[0], "x")
    assert wall[0] == 0 and wall == sorted(wall)  # seconds since the first point, never back in time
    assert chart(at, "compare.curves")["layout"]["xaxis"]["title"]["text"] == "seconds since the first point"


def test_a_zoom_reads_the_range_again_at_full_resolution_and_the_url_keeps_it():
    """1,000 steps reduced to the chart's buckets; zoomed to 100-199, every step of that range is drawn."""
    from dlx.tracking import start_run

    run_id = default_store().create_run({"lr": 0.1}, name="long")
    with start_run(run_id=run_id, handle_signals=False) as run:
        run.log_series("val_acc", [float(step % 7) for step in range(5000)], 0)
    at = open_compare(runs=str(run_id), metric="val_acc")
    whole = [t for t in chart(at, "compare.curves")["data"] if t.get("name")]
    assert len(axis(whole[0], "x")) <= 800 < 5000
    at = open_compare(runs=str(run_id), metric="val_acc", zoom="100-199")
    [line] = [t for t in chart(at, "compare.curves")["data"] if t.get("name")]
    assert axis(line, "x") == list(range(100, 200)) and axis(line, "y") == [float(s % 7) for s in range(100, 200)]
    assert "Zoomed to steps 100–199" in captions(at)
    at.button(key="compare.unzoom").click().run()
    assert "zoom" not in at.query_params


@pytest.mark.parametrize("boxes, expected", [([], None), ([{"x": [10.4, 99.2]}], (10, 100)),
                                             ([{"x": [5.0, 5.0]}], None), ([{"x": [-3, 40]}], (0, 40))])
def test_a_box_over_the_chart_becomes_a_step_range(boxes, expected):
    assert compare.zoom_from_box(boxes) == expected


@pytest.mark.parametrize("text, expected", [("100-199", (100, 199)), ("", None), ("9-3", None), ("a-b", None),
                                            ("1-٣", None)])
def test_a_zoom_in_the_url_is_read_strictly(text, expected):
    assert compare.parse_zoom(text) == expected


def test_confusion_matrices_side_by_side():
    ids = small_sweep()
    at = open_compare(runs=",".join(map(str, ids[:3])))
    assert len([c for c in at.get("plotly_chart") if "compare.confusion" in c.proto.id]) == 3


def test_tags_and_notes_are_saved_from_the_page_and_filterable():
    store = default_store()
    ids = small_sweep()
    at = open_compare(runs=",".join(map(str, ids)))
    at.text_input[[t.label for t in at.text_input].index("Tags")].set_value("baseline, owner=ana")
    at.text_area[0].set_value("diverged once; rerun with warmup")
    at.button[[b.label for b in at.button].index("Save tags and note")].click().run()
    assert not at.exception
    run = store.get_run(ids[0])
    assert run.user_tags == {"baseline": "", "owner": "ana"} and run.note == "diverged once; rerun with warmup"
    assert [r.id for r in store.list_runs(filter='tag.owner = "ana"')] == [ids[0]]


def test_a_reserved_or_nameless_tag_is_refused_naming_the_field():
    store = default_store()
    run_id = small_sweep()[0]
    with pytest.raises(DlxError, match="tags: names starting with 'dlx.' are reserved") as err:
        store.set_tags(run_id, parse_tags("dlx.archived"))
    assert err.value.field == "tags"
    with pytest.raises(DlxError, match="has a value but no name"):
        parse_tags("=x")
    with pytest.raises(DlxError, match="run: there is no run #999999"):
        store.set_note(999999, "hello")


def test_archive_asks_first_hides_the_runs_and_show_archived_brings_them_back():
    store = default_store()
    ids = small_sweep()
    at = open_compare(runs=",".join(map(str, ids[:2])))
    at.button(key="compare.archive").click().run()
    assert "Archive 2 runs?" in "\n".join(w.value for w in at.warning)
    assert store.list_runs(archived=True) == []  # nothing yet: it asked
    at.button(key="compare.confirmed").click().run()
    assert not at.exception
    assert sorted(r.id for r in store.list_runs(archived=True)) == ids[:2]
    assert "Runs 1–2 of 2" in captions(at)  # hidden from the list by default
    at.toggle(key="compare.archived").set_value(True).run()
    assert "Runs 1–4 of 4" in captions(at)


def test_delete_asks_first_then_removes_the_selected_runs():
    store = default_store()
    ids = small_sweep()
    at = open_compare(runs=",".join(map(str, ids[2:])))
    at.button(key="compare.delete").click().run()
    assert len(store.list_runs()) == 4
    at.button(key="compare.kept").click().run()
    at.button(key="compare.delete").click().run()
    at.button(key="compare.confirmed").click().run()
    assert not at.exception
    assert sorted(r.id for r in store.list_runs()) == ids[:2]


def test_the_curves_open_on_accuracy_not_the_first_key_by_name():
    store = default_store()
    run_id = store.create_run({"dataset": "iris", "model": "mlp"}, status="running")
    with Run(store, run_id) as run:
        for step in (1, 2):
            run.log_metrics({"epoch": step, "lr": 0.1, "train_loss": 1 / step, "val_acc": step / 2}, step)
    at = open_compare(runs=str(run_id))
    assert at.selectbox(key="compare.metric").value == "val_acc"  # was "epoch", first by name
    assert at.selectbox(key="compare.metric").options[:2] == ["val_acc", "train_loss"]
