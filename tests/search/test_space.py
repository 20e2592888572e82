"""A search's space and settings: every spec kind parsed, every bad one named by its parameter."""
from __future__ import annotations

import pytest

from dlx.errors import DlxError
from dlx.search.space import apply, grid_size, parse_dimension, parse_space
from dlx.search.spec import parse_spec
from dlx.views.search import parse_space_text, trial_count

BASE = {"dataset": "digits", "model": "mlp", "epochs": 2}


def spec(**values):
    return parse_spec({"base": BASE, "space": {"lr": "log:1e-4:1e-1"}, "objectives": ["val_acc"],
                       "directions": ["maximize"], "trials": 4, **values})


def test_each_spec_kind_parses_to_its_range():
    assert parse_dimension("lr", "1e-3, 3e-3").values == (1e-3, 3e-3)
    assert parse_dimension("lr", "float:0.001:0.1").kind == "float"
    log = parse_dimension("lr", "log:1e-4:1e-1")
    assert (log.kind, log.low, log.high) == ("log", 1e-4, 1e-1)
    assert parse_dimension("batch_size", "int:16:64").size() == 49
    assert parse_dimension("optimizer", "choice:adam,sgd").values == ("adam", "sgd")
    assert parse_dimension("model_options.hidden", "choice:32,64").values == (32, 64)
    assert grid_size(parse_space({"lr": "1e-3,3e-3", "batch_size": "choice:16,32,64"})) == 6
    assert grid_size(parse_space({"lr": "log:1e-4:1e-1"})) is None
    assert apply(BASE, {"lr": 0.01, "model_options.hidden": 32}) == {**BASE, "lr": 0.01,
                                                                      "model_options": {"hidden": 32}}


@pytest.mark.parametrize(("name", "text", "says"), [
    ("lr", "log:0:1", "LOW above 0"),
    ("lr", "float:1:0.1", "LOW must be below HIGH"),
    ("lr", "float:abc:1", "not a number"),
    ("batch_size", "int:1.5:8", "not a whole number"),
    ("lr", "log:1e-3", "needs two bounds"),
    ("lr", "uniform:1:2", "unknown spec kind"),
    ("optimizer", "choice:", "at least one value"),
    ("lr", "1e-3,1e-3", "listed twice"),
    ("learning_rate", "1e-3", "not a run setting"),
    ("dataset", "choice:digits,wine", "not the dataset"),
    ("lr", "float:0:inf", "finite"),
])
def test_bad_spec_names_its_parameter(name, text, says):
    with pytest.raises(DlxError, match=says) as err:
        parse_dimension(name, text)
    assert err.value.field == name and str(err.value).startswith(f"{name}:")


def test_settings_that_cannot_work_together_are_refused_by_name():
    with pytest.raises(DlxError, match="grid sampler needs a list") as err:
        spec(sampler="grid")
    assert err.value.field == "lr"
    with pytest.raises(DlxError, match="CMA-ES needs every parameter numeric") as err:
        spec(sampler="cmaes", space={"optimizer": "choice:adam,sgd"})
    assert err.value.field == "optimizer"
    with pytest.raises(DlxError, match="cannot prune") as err:
        spec(objectives=["val_acc", "parameters"], directions=["maximize", "minimize"], pruner="median")
    assert err.value.field == "pruner"
    with pytest.raises(DlxError, match="trial budget or a time budget"):
        spec(trials=None)
    with pytest.raises(DlxError, match="direction: 3 objectives need as many directions"):
        spec(objectives=["val_acc", "parameters", "x"], directions=["maximize", "minimize"])
    with pytest.raises(DlxError, match="NAME=SPEC"):
        parse_space_text("lr log:1e-4:1e-1")
    with pytest.raises(DlxError, match="given twice") as err:
        parse_space_text("lr=1e-3\nlr=3e-3")
    assert err.value.field == "lr"


def test_the_trial_count_is_told_before_launch():
    assert spec(parallel=2).budget() == 4
    grid = spec(sampler="grid", trials=None, space={"lr": "1e-3,3e-3", "batch_size": "16,32,64"})
    assert grid.budget() == 6
    assert trial_count(grid) == "6 trials, of a space of 6 combinations, 1 at a time"
    assert trial_count(spec(parallel=2, timeout_s=600)) == "4 trials, at most 10 min, 2 at a time"


def test_dlx_search_names_a_bad_parameter_and_queues_nothing(capsys):
    from dlx.cli import main
    from dlx.store import default_store

    code = main(["search", "--dataset", "digits", "--model", "mlp", "--param", "lr=log:1e-3:1e-1",
                 "--param", "batch_size=int:64:16", "--trials", "4", "--no-worker"])
    assert code == 2
    assert capsys.readouterr().err == "error: batch_size: int:64:16: LOW must be below HIGH\n"
    assert default_store().queue.counts() == {}
