"""The one-file report: trained runs with cached explanations, written as HTML that holds every figure,
embeds Plotly once, fetches nothing and escapes what users wrote; `dlx report`; the pages' buttons."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from dlx.cli import main
from dlx.store import default_store
from dlx.views.report import report_html
from tests.helpers.processes import train_in_process

ATTACK = '</script><script>alert(1)</script><img src=x onerror=alert(2)>"'
METHODS = ["saliency", "integrated_gradients", "grad_cam"]
TEXT_METHODS = ["layer_integrated_gradients", "attention_rollout"]
SAMPLES = [0, 1, 2]


@pytest.fixture
def dlx_home(shared_home):
    """Overrides conftest's per-test directory: the tests here share the module's runs."""
    return shared_home


@pytest.fixture(scope="module")
def digits_run(shared_home) -> int:
    """A digits CNN (1 epoch of the train path) with three methods' maps on three test samples and their scores."""
    from dlx.explain.image.gallery import build_gallery
    from dlx.explain.models_cache import get_loaded_run
    from dlx.explain.samples import sample_inputs
    from dlx.explain.scoring import scores_cached

    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1})
    loaded = get_loaded_run(default_store(), run_id)
    inputs = sample_inputs(loaded.bundle.test, SAMPLES)
    gallery = build_gallery(loaded, inputs, ["x"] * len(SAMPLES), METHODS)
    scores_cached(loaded, inputs, gallery.targets, METHODS[:2], sensitivity=False)
    return run_id


@pytest.fixture(scope="module")
def text_run(shared_home) -> int:
    """A tiny sentiment transformer with two methods' token attributions on two test sentences."""
    from dlx.explain.cache import explain_text_cached
    from dlx.explain.models_cache import get_loaded_run
    from dlx.explain.text.tokens import encode

    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24},
                               "device": "cpu"})
    loaded = get_loaded_run(default_store(), run_id)
    for text in loaded.bundle.test.texts[:2]:
        for method in TEXT_METHODS:
            explain_text_cached(loaded, encode(loaded.model.tokenizer, text, 24), method, 1)
    return run_id


class Page(HTMLParser):
    """What a browser would load or run: tags, the attributes that fetch, script bodies."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.fetching: list[str] = []
        self.scripts: list[str] = []
        self.plotly_divs = 0
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        found = dict(attrs)
        self.fetching += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action", "poster", "data")]
        self.plotly_divs += tag == "div" and "plotly-graph-div" in (found.get("class") or "")
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def figures(page: Page) -> list[list[dict]]:
    """Each figure's traces, read from its `Plotly.newPlot("id", data, layout, config)` call."""
    decoder = json.JSONDecoder()
    found = []
    for script in page.scripts[1:]:
        start = script.index("Plotly.newPlot(")
        data_at = script.index("[", script.index(",", start))
        found.append(decoder.raw_decode(script, data_at)[0])
    return found


def check_offline(text: str) -> Page:
    page = Page(text)
    assert page.fetching == []  # no src/href at all: nothing to load, not even a data: URI
    assert "<link" not in text and "@import" not in text and "url(" not in text.replace(get_plotlyjs(), "")
    assert text.count(get_plotlyjs()[:2000]) == 1 and "cdn.plot.ly" not in text.replace(get_plotlyjs(), "")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    return page


def test_digits_report_holds_every_figure_once_and_fetches_nothing(digits_run):
    text = report_html(default_store(), digits_run)
    page = check_offline(text)
    # curves, the other metrics (learning rate, throughput), confusion matrix, the maps' grid, faithfulness
    assert page.plotly_divs == 5
    assert len(page.scripts) == 1 + page.plotly_divs  # Plotly once, then one call per figure
    # every cached map drawn once on its sample, plus the confusion matrix
    heatmaps = [sum(trace["type"] == "heatmap" for trace in data) for data in figures(page)]
    assert heatmaps[2:4] == [1, len(METHODS) * len(SAMPLES)]
    assert "Attribution maps (9 stored, on 3 test samples)" in text and "Faithfulness on 3 samples" in text
    assert "Integrated Gradients" in text and "Confusion matrix" in text and "<td>test_acc</td>" in text
    assert len(text.encode()) < 10_000_000


@pytest.fixture(scope="module")
def checked_run(shared_home) -> int:
    """A digits CNN that kept a checkpoint per epoch, explained over training and sanity-checked."""
    from dlx.explain.jobs import parse_sanity_task, run_sanity
    from dlx.explain.models_cache import get_loaded_run
    from dlx.explain.over_training import over_training, parse_task

    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2, "checkpoint_every": 1})
    store = default_store()
    over_training(store, parse_task({"run_id": run_id, "methods": ["saliency"], "indices": [0, 1]}))
    run_sanity(get_loaded_run(store, run_id), parse_sanity_task({"run_id": run_id, "n_samples": 4,
                                                                  "methods": ["saliency", "guided_backprop"]}))
    return run_id


def test_report_holds_the_sanity_checks_and_the_maps_over_training(checked_run):
    text = report_html(default_store(), checked_run)
    page = check_offline(text)
    assert "Sanity checks (Adebayo et al. 2018) on 4 test samples" in text
    assert text.count("<td>passed</td>") + text.count("<td>failed</td>") == 2  # a verdict per method
    assert "Over training: 2 samples under 2 kept checkpoints" in text
    traces = figures(page)
    # the cascading and independent curves: one line per method each
    curves = [data for data in traces if data and all(t["type"] == "scatter" for t in data)
              and {t.get("name") for t in data} >= {"Saliency", "Guided Backprop"}]
    assert len(curves) >= 2
    # the maps over training: 2 samples x 2 checkpoints
    assert any(sum(t["type"] == "heatmap" for t in data) == 4 for data in traces)
    assert "Stored results this report does not draw" not in text


def test_text_report_holds_coloured_words_and_attention_views(text_run):
    text = report_html(default_store(), text_run)
    page = check_offline(text)
    # curves, other metrics, confusion matrix; per sentence its model view, head view and rollout/relevance bars
    assert page.plotly_divs == 3 + 2 * 3
    assert "Token attributions (4 stored, on 2 test sentences)" in text
    assert text.count("Layer Integrated Gradients") == 2 and text.count("<span title=") > 4
    assert len(text.encode()) < 10_000_000


def test_a_users_strings_are_escaped(shared_home):
    store = default_store()
    run_id = store.create_run({"dataset": "digits", "lr": ATTACK}, name=ATTACK, status="failed")
    store.set_tags(run_id, {ATTACK: ATTACK})
    text = report_html(store, run_id)
    page = check_offline(text)
    assert page.tags.count("script") == 1 and "img" not in page.tags  # only Plotly's own script
    assert "alert" not in page.scripts[0] and ATTACK not in text
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in text


def test_cli_writes_the_report_and_refuses_an_unknown_run(digits_run, tmp_path, capsys):
    out = tmp_path / "run.html"
    assert main(["report", str(digits_run), "-o", str(out)]) == 0
    assert Page(out.read_text()).plotly_divs == 5 and str(out) in capsys.readouterr().out
    assert main(["report", "987654"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run:") and "#987654" in err
    assert not Path("run-987654.html").exists()


@pytest.fixture
def deferred(monkeypatch):
    """Runs a download button's deferred callable through the AppTest's media file manager: its bytes."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.testing.v1 import app_test

    managers = []

    class Keeping(MediaFileManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            managers.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Keeping)

    def download(at, key: str) -> bytes:
        button, = [b for b in at.get("download_button") if b.proto.id.endswith(key) or key in b.proto.id]
        manager = managers[-1]
        url = manager.execute_deferred(button.proto.deferred_file_id)
        return manager._storage.get_file(url.rsplit("/", 1)[-1].split(".")[0]).content

    return download


def test_run_page_and_explain_pages_offer_the_report(digits_run, text_run, deferred):
    from tests.helpers.explain_page import open_page
    from tests.helpers.pages import open_app

    at = open_app("pages/runs.py", run=str(digits_run))
    assert Page(deferred(at, "runs.report").decode()).plotly_divs == 5
    for run_id, figures in ((digits_run, 5), (text_run, 9)):
        at = open_page(run=str(run_id))
        assert Page(deferred(at, "explain.report").decode()).plotly_divs >= figures
