"""Every registered attribution method on every registered model of each kind it takes, trained for
real through dlx's train path (tiny configs, one run per model shared by the module), through the
library and through the Explain page: finite maps of the inputs' shape, no exception, no error box.

The cases are read from the registries (dlx.models.MODELS, dlx.explain.METHODS), so a
model or method registered later is covered here without editing this file. MiniLM keeps its
default freezing (embeddings and the four lower layers without grad): the headline text model.
"""
from __future__ import annotations

import base64
import copy
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from dlx.explain import METHODS, available_methods, explain, explain_text, methods_for
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.text.tokens import encode
from dlx.models import MODELS
from dlx.store import default_store
from tests.helpers.processes import train_in_process

PAGE = Path(__file__).resolve().parents[2] / "pages" / "explain.py"
TEXTS = "tiny_sentiment"  # a user text set of 36 generated sentences, imported into the shared store
DATASETS = {"image": "digits", "table": "iris", "text": TEXTS}
# Smaller than the defaults where a model is slow to train; a model not named here trains with its defaults.
TINY = {"vit": {"layers": 1, "heads": 2, "hidden": 16, "mlp": 32},
        "transformer": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24},
        "minilm": {"max_length": 24}}  # freeze_layers left at its default
CASES = [(model, kind) for model, entry in MODELS.items() for kind in entry.kinds]
IDS = [f"{model}-{kind}" for model, kind in CASES]


@pytest.fixture
def dlx_home(shared_home):
    """Overrides conftest's per-test directory: the tests here share the module's trained runs."""
    return shared_home


@pytest.fixture(scope="module")
def runs(shared_home):
    """(model, kind) -> run id, trained on first use: 1 epoch of the train path, CPU."""
    from dlx.data.text_sentiment import generate
    from dlx.data.user_texts import import_text_csv

    texts, labels, _ = generate(0, 18)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["text", "label"])
    writer.writerows((text, ("negative", "positive")[int(label)]) for text, label in zip(texts, labels))
    import_text_csv(default_store(), rows.getvalue().encode(), TEXTS, "text", "label")
    trained: dict[tuple[str, str], int] = {}

    def run(model: str, kind: str) -> int:
        if (model, kind) not in trained:
            trained[model, kind] = train_in_process({
                "dataset": DATASETS[kind], "model": model, "epochs": 1, "batch_size": 128, "device": "cpu",
                "model_options": TINY.get(model, {})})
        return trained[model, kind]

    return run


def grad_state(model: torch.nn.Module) -> list[bool]:
    return [p.requires_grad for p in model.parameters()]


def check_text_methods(model: torch.nn.Module, sentence: str) -> None:
    e = encode(model.tokenizer, sentence, model.max_length)
    for method in methods_for("text"):
        result = explain_text(method, model, e, 1)
        assert result.values.shape == (len(e.tokens),), method
        assert torch.isfinite(result.values).all(), method
        assert not result.values[torch.tensor(e.special)].any(), method


def check_methods(model: torch.nn.Module, inputs: torch.Tensor, kind: str) -> list[str]:
    methods = available_methods(model, kind)
    for method in methods:
        result = explain(method, model, inputs, 1)
        assert result.values.shape == inputs.shape, method
        assert torch.isfinite(result.values).all(), method
    return methods


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_every_method_explains_the_trained_model_as_stored(model, kind, runs):
    """The page's cached model as loaded (frozen parts kept frozen), and a copy with no parameter
    requiring grad at all: every method runs, and neither model's requires_grad or mode changes."""
    loaded = get_loaded_run(default_store(), runs(model, kind))
    if model == "minilm":  # the case of issue 25: MiniLM's default freezing is in the stored model
        assert not all(grad_state(loaded.model)) and any(grad_state(loaded.model))
    frozen = copy.deepcopy(loaded.model).requires_grad_(False)
    before = grad_state(loaded.model)
    for subject in (loaded.model, frozen):
        if kind == "text":
            check_text_methods(subject, loaded.bundle.test.texts[0])
        else:
            assert check_methods(subject, loaded.bundle.test.x[:2], kind)
        assert not subject.training
    assert grad_state(loaded.model) == before and not any(grad_state(frozen))
    assert get_loaded_run(default_store(), loaded.run_id) is loaded  # shared between calls, still as stored


def test_the_matrix_covers_every_registered_method():
    """Each registered method applies to at least one registered model of one of its kinds."""
    from dlx.data.registry import DatasetMeta
    from dlx.models import build_model

    covered = set()
    for model, kind in CASES:
        if kind != "text":
            meta = DatasetMeta("m", kind, ("a", "b"), (1, 8, 8) if kind == "image" else (4,))
            covered.update(available_methods(build_model(model, meta, **TINY.get(model, {})), kind))
    assert covered == {m for m in METHODS if {"image", "table"} & set(METHODS[m].kinds)}
    assert any(kind == "text" for _, kind in CASES) and methods_for("text")


# -- the Explain page --------------------------------------------------------------------------------
def open_explain(run_id: int) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def finite(values) -> bool:
    """Every number in a (nested) list from a figure's JSON is finite (NaN and inf come out as null or strings)."""
    if isinstance(values, list):
        return all(finite(v) for v in values)
    return isinstance(values, (int, float)) and math.isfinite(values)


def decoded(values) -> list:
    """A figure's array as a list: plotly writes numpy arrays as {"dtype", "bdata" (base64), "shape"}."""
    if not isinstance(values, dict):
        return list(values)
    shape = tuple(int(s) for s in str(values.get("shape", "")).split(",") if s.strip())
    return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).reshape(shape or -1).tolist()


@pytest.mark.parametrize(("model", "kind"), CASES, ids=IDS)
def test_every_method_draws_on_the_explain_page(model, kind, runs):
    run_id = runs(model, kind)
    at = open_explain(run_id)
    loaded = get_loaded_run(default_store(), run_id)
    if kind == "text":
        at.multiselect(key="explain.text.methods").set_value(methods_for("text")).run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        config = loaded.model.encoder.config
        view, *others = figures(at)
        maps = [t for t in view["data"] if t["type"] == "heatmap"]
        assert len(maps) == config.num_hidden_layers * config.num_attention_heads  # the model view
        assert all(finite(decoded(t["z"])) for t in maps)
        flows = next(f for f in others if {t.get("name") for t in f["data"]} >= {"rollout", "relevance"})
        assert all(finite(decoded(t["x"] if t.get("orientation") == "h" else t["y"])) for t in flows["data"])
        sentences = [str(h.proto.body) for h in at.get("html") if "<span" in str(h.proto.body)]
        assert len(sentences) == len(methods_for("text"))  # one coloured sentence per method
        assert "nan" not in " ".join(sentences).lower()
        # every method scored by word deletion on two test sentences, here in the page
        at.multiselect(key="explain.text.score_methods").set_value(methods_for("text")).run()
        at.number_input(key="explain.text.n").set_value(2).run()
        at.button(key="explain.text.score").click().run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        table, = [d.value for d in at.dataframe if "Deletion AUC ↓" in d.value.columns]
        assert len(table) == len(methods_for("text")) + 1  # and the random reference
        return
    available = available_methods(loaded.model, kind)
    at.multiselect(key=f"explain.methods.{'-'.join(available)}").set_value(available).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    if kind == "image":
        grid = figures(at)[0]
        maps = [decoded(t["z"]) for t in grid["data"] if t["type"] == "heatmap"]
        assert len(maps) == 4 * len(available)  # four samples, every method
        side = loaded.meta.input_shape[1:]
        assert all(finite(z) and (len(z), len(z[0])) == side for z in maps)
    else:
        bars = [f for f in figures(at) if any(t["type"] == "bar" for t in f["data"])]
        assert len(bars) == 4  # one panel row per sample
        for figure in bars:
            assert len(figure["data"]) == len(available) and all(finite(decoded(t["x"])) for t in figure["data"])
