"""The Explain page under streamlit.testing: maps, uploads, faithfulness, localisation, jobs, two runs."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dlx.explain import METHODS
from dlx.explain.jobs import ExplainTask, find_job, run_task
from dlx.explain.models_cache import get_loaded_run
from dlx.store import default_store
from dlx.views.charts.explain import method_colour
from tests.helpers.explain_page import charts, open_page, texts, traces
from tests.helpers.processes import train_in_process


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Nothing picks up the jobs these tests queue: they finish them in-process when needed."""
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


def png(width: int, height: int, mode: str = "L") -> bytes:
    shape = (height, width) if mode == "L" else (height, width, 3)
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8), mode).save(out, "PNG")
    return out.getvalue()


def test_page_shows_one_heatmap_per_method_and_sample_with_times(trained_run):
    at = open_page()
    assert at.selectbox(key="explain.run").value.id == trained_run
    grid, = charts(at)
    assert traces(grid, "heatmap") == 4 * 3  # four samples, three default methods
    titles = [a["text"] for a in grid["layout"]["annotations"]]
    assert any("Integrated Gradients" in t and " ms" in t for t in titles)
    assert "time per sample: Saliency" in texts(at) and "(cached)" not in texts(at)
    assert "Convergence delta, largest |sum of attributions − (f(input) − f(baseline))|: Integrated Gradients" \
        in texts(at)
    at.run()  # a second look is served from the explanation cache
    assert "Saliency" in texts(at) and texts(at).count("(cached)") == 3


def test_changing_a_method_parameter_recomputes_only_that_method(trained_run):
    at = open_page()
    at.number_input(key="explain.param.integrated_gradients.n_steps").set_value(10).run()
    caption = next(c.value for c in at.caption if "time per sample" in c.value)
    assert "Integrated Gradients" in caption and caption.count("(cached)") == 2  # IG with 10 steps is new


def test_picking_a_run_without_a_checkpoint_gives_a_clear_message(trained_run):
    default_store().create_run({"dataset": "digits", "model": "cnn"}, name="waiting", status="queued")
    at = open_page()
    at.selectbox(key="explain.run").select_index(0).run()  # the newest: the queued run
    assert "no checkpoint" in at.selectbox(key="explain.run").format_func(at.selectbox(key="explain.run").value)
    assert len(at.error) == 1 and "has no 'best' checkpoint" in at.error[0].value
    assert "finished at least one epoch" in at.error[0].value and not at.get("plotly_chart")


def test_uploading_a_non_image_or_an_image_of_the_wrong_shape_gives_a_clear_message(trained_run):
    at = open_page()
    at.radio(key="explain.source").set_value("an uploaded image").run()
    assert "Upload an image to explain it." in texts(at)
    at.file_uploader(key="explain.upload").set_value(("notes.txt", b"not pixels at all", "text/plain")).run()
    assert "notes.txt is not an image that can be read" in at.error[0].value
    assert "BytesIO" not in at.error[0].value
    at.file_uploader(key="explain.upload").set_value(("strip.png", png(120, 10), "image/png")).run()
    assert "too far from the model's 8×8 shape" in at.error[0].value
    at.file_uploader(key="explain.upload").set_value(("seven.png", png(32, 32), "image/png")).run()
    assert not at.error and not at.exception
    grid, = charts(at)
    assert traces(grid, "heatmap") == 3 and grid["layout"]["annotations"][0]["text"] == "seven.png"
    assert [i.value for i in at.info] == ["seven.png (32×32) was resized to the model's 8×8."]


def test_a_colour_upload_to_a_grayscale_model_is_converted_and_the_page_says_so(trained_run):
    at = open_page()
    at.radio(key="explain.source").set_value("an uploaded image").run()
    at.file_uploader(key="explain.upload").set_value(("photo.png", png(8, 8, "RGB"), "image/png")).run()
    assert not at.error and not at.exception
    assert [i.value for i in at.info] == ["photo.png is a colour image and this model takes grayscale ones: "
                                          "it was converted to grayscale."]
    grid, = charts(at)
    assert traces(grid, "heatmap") == 3 and grid["layout"]["annotations"][0]["text"] == "photo.png"


def walk(node):
    """Every element and block of the page in the order it is drawn, with whether it is in an expander."""
    inside = getattr(node, "type", None) == "expander"
    for _, child in sorted(getattr(node, "children", {}).items()):
        yield child, inside
        for grandchild, deeper in walk(child):
            yield grandchild, inside or deeper


def test_the_pictures_come_first_and_nine_methods_wrap_with_one_colour_bar_and_method_colours(trained_run):
    at = open_page()
    methods = at.multiselect(key=next(w.key for w in at.multiselect if w.key.startswith("explain.methods")))
    everything = list(methods.options)
    assert len(everything) >= 9
    methods.set_value([m for m in METHODS if METHODS[m].label in everything]).run()
    assert not at.exception and not at.error

    # Above the maps: three controls; everything else is in one expander, until asked for.
    shown_first = []
    for node, in_expander in walk(at.main):
        if getattr(node, "type", None) == "plotly_chart":
            break
        if getattr(node, "key", None) and not in_expander:
            shown_first.append(node.key)
    assert [key.split(".")[1] for key in shown_first] == ["run", "methods", "compare"]
    assert {w.key for w in at.expander[0].selectbox} >= {"explain.pick", "explain.baseline.image"}

    grid, = charts(at)
    layout = grid["layout"]
    widths = {round(axis["domain"][1] - axis["domain"][0], 3) for name, axis in layout.items()
              if name.startswith("xaxis")}
    assert min(widths) > 0.17  # at most five cells a line: nine maps are not 65 px slivers
    starts = {round(axis["domain"][0], 3) for name, axis in layout.items() if name.startswith("xaxis")}
    assert len(starts) == 5
    heatmaps = [t for t in grid["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 4 * len(everything)
    assert {t["coloraxis"] for t in heatmaps} == {"coloraxis"}  # one shared colour bar...
    assert not [name for name in layout if name.startswith("coloraxis") and name != "coloraxis"]
    assert layout["coloraxis"]["cmin"] == -1 and layout["coloraxis"]["cmax"] == 1
    title_colours = {a["text"].split("<br>")[0]: a["font"]["color"] for a in layout["annotations"] if "<br>" in a["text"]}
    assert title_colours == {METHODS[m].label: method_colour(m) for m in METHODS if METHODS[m].label in everything}
    assert len(set(title_colours.values())) == len(title_colours)  # ...and one colour per method


def test_faithfulness_scores_rank_the_methods_against_a_random_map(trained_run):
    at = open_page()
    at.checkbox(key="explain.sensitivity").uncheck().run()
    at.button(key="explain.score").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["method"]) == {"Saliency", "Integrated Gradients", "Grad-CAM", "Random (reference)"}
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert {"Deletion AUC ↓", "Insertion AUC ↑", "Infidelity ↓"} <= set(table.columns)
    curves = [c for c in charts(at) if traces(c, "scatter") == 8]  # 4 methods × deletion and insertion
    assert len(curves) == 1
    grid = charts(at)[0]
    title_colours = {a["text"].split("<br>")[0]: a["font"]["color"] for a in grid["layout"]["annotations"]
                     if "<br>" in a["text"]}
    curve_colours = {t["name"]: t["line"]["color"] for t in curves[0]["data"]}
    assert {name: curve_colours[name] for name in title_colours} == title_colours  # a method keeps its colour
    assert curve_colours["Random (reference)"] not in title_colours.values()
    at.run()  # stored: shown again without pressing the button
    assert len(at.dataframe) == 1 and at.dataframe[0].value.equals(table)


def test_known_answer_run_shows_the_mask_and_localisation_scores():
    train_in_process({"dataset": "patterns", "model": "cnn", "epochs": 1})
    at = open_page()
    grid, = charts(at)
    assert sum(a["text"] == "ground truth" for a in grid["layout"]["annotations"]) == 4
    at.checkbox(key="explain.sensitivity").uncheck().run()
    at.button(key="explain.score").click().run()
    table = at.dataframe[0].value
    assert {"Mass in mask ↑", "Pointing game ↑"} <= set(table.columns)


def test_two_runs_side_by_side_explain_the_same_samples(trained_run):
    second = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1, "seed": 1})
    at = open_page(run=str(trained_run))
    at.selectbox(key="explain.compare").select_index(1).run()  # the only other digits run
    assert not at.exception and not at.error
    grids = charts(at)
    assert len(grids) == 2
    first_titles = [a["text"] for a in grids[0]["layout"]["annotations"] if a["text"].startswith("#")]
    second_titles = [a["text"] for a in grids[1]["layout"]["annotations"] if a["text"].startswith("#")]
    assert first_titles == second_titles  # the same samples
    captions = [c.value for c in at.caption if "time per sample" in c.value]
    assert captions[0].startswith(f"Run #{trained_run}") and captions[1].startswith(f"Run #{second}")


def test_table_run_shows_feature_bars_and_global_importance_from_a_job():
    store = default_store()
    run_id = train_in_process({"dataset": "breast_cancer", "model": "mlp", "epochs": 2})
    at = open_page()
    bars = charts(at)
    assert len(bars) == 4 and traces(bars[0], "bar") == 2  # four samples, IG and Feature Ablation
    assert "mean radius" in str(bars[0]) or "worst" in str(bars[0])
    at.button(key="explain.job.global_importance").click().run()
    task = ExplainTask(run_id=run_id, task="global_importance", methods=["integrated_gradients", "feature_ablation"],
                       n_samples=len(get_loaded_run(store, run_id).bundle.test))
    job = find_job(store, task)
    assert job is not None and job.status == "queued"
    assert any(p.proto.text.startswith(f"job #{job.id} queued") for p in at.get("progress"))
    run_task(get_loaded_run(store, run_id), task)  # what the worker would do
    store.queue.finish_job(job.id, "succeeded")
    at.run()
    figures = charts(at)
    assert any(traces(f, "scattergl") == 1 for f in figures)  # the beeswarm
    assert any(traces(f, "bar") == 2 and f["layout"].get("barmode") == "group" for f in figures)
    assert store.get_run(run_id).status == "succeeded"
