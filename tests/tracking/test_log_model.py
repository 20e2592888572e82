"""`run.log_model` (issue 32): a model from the user's own script, stored as safetensors with its builder's
import path, is rebuilt by the Explain page and explained like a built-in run; a builder dlx may not import
(DLX_MODEL_BUILDERS, or an exposed app) is refused with a clear message, never imported."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from dlx.data.registry import load_dataset
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.tracking import start_run
from tests.helpers.explain_page import open_page, texts, traces
from tests.helpers.script_models import make_net

BUILDER = "tests.helpers.script_models:make_net"


def logged_run() -> tuple[int, torch.nn.Module]:
    """A script's own loop: 30 full-batch steps on digits, then log_model."""
    torch.manual_seed(0)
    train = load_dataset("digits").train
    net = make_net(hidden=24)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    with start_run(name="script", config={"dataset": "digits", "model": "my mlp"}, handle_signals=False) as run:
        for step in range(30):
            loss = torch.nn.functional.cross_entropy(net(train.x), train.y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log_metric("train_loss", loss.item(), step)
        run.log_model(net, builder=BUILDER, input="digits", hidden=24)
    return run.id, net


def test_a_logged_script_model_is_rebuilt_and_explained_on_the_page(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    run_id, net = logged_run()
    from dlx.explain.models_cache import get_loaded_run

    loaded = get_loaded_run(default_store(), run_id)
    x = load_dataset("digits").test.x[:5]
    assert torch.equal(loaded.model(x), net.eval()(x))  # the same weights, rebuilt by the builder
    at = open_page(run=str(run_id))
    grid = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert traces(grid, "heatmap") >= 3  # a map per method and sample, as for a built-in image run
    assert "time per sample: Saliency" in texts(at)


def test_log_model_checks_its_arguments():
    with start_run(handle_signals=False) as run:
        with pytest.raises(DlxError, match="builder: 'make_net' is not an import path"):
            run.log_model(make_net(), builder="make_net", input="digits")
        with pytest.raises(DlxError, match="builder_kwargs"):
            run.log_model(make_net(), builder=BUILDER, input="digits", hidden=object())


def test_a_builder_outside_dlx_model_builders_or_in_an_exposed_app_is_never_imported(monkeypatch):
    from dlx.explain.models_cache import get_loaded_run

    with start_run(handle_signals=False) as run:
        run.log_model(make_net(), builder="tests.helpers.never_imported:make_net", input="digits")
    monkeypatch.setenv("DLX_MODEL_BUILDERS", "mypkg, tests.helpers.script_models")
    with pytest.raises(DlxError, match="not among the modules DLX_MODEL_BUILDERS allows"):
        get_loaded_run(default_store(), run.id)
    monkeypatch.delenv("DLX_MODEL_BUILDERS")
    monkeypatch.setenv("DLX_EXPOSED", "1")
    with pytest.raises(DlxError, match="DLX_MODEL_BUILDERS"):
        get_loaded_run(default_store(), run.id)
    assert "tests.helpers.never_imported" not in sys.modules
