"""The filter grammar: what parses, what is refused with its position, and injection attempts as data."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Run as RunRow
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.store.query import BoolOp, Comparison, FilterError, Not, parse
from dlx.tracking import Run


def _run(params: dict, metrics: dict, *, status: str = "succeeded", config: dict | None = None,
         tags: dict | None = None, sweep: str | None = None, experiment: str = "default") -> int:
    store = default_store()
    run_id = store.create_run(config or {}, experiment=experiment, sweep=sweep, status=status)
    run = Run(store, run_id)
    run.log_params(params)
    if tags:
        run.set_tags(tags)
    run.log_metrics(metrics, step=1)
    run.flush()
    run._stop.set()
    return run_id


@pytest.fixture
def runs() -> dict[str, int]:
    """Four runs with params, final metrics, tags and run columns that filters can tell apart."""
    return {
        "a": _run({"lr": 0.001, "optimizer": "adam", "layers": 2}, {"val_acc": 0.95, "val_loss": 0.2},
                  config={"dataset": "digits", "model": "cnn"}, tags={"note": "best"}, sweep="grid"),
        "b": _run({"lr": 0.1, "optimizer": "sgd", "layers": 3}, {"val_acc": 0.80, "val_loss": 0.9},
                  config={"dataset": "digits", "model": "mlp"}, sweep="grid"),
        "c": _run({"lr": 0.005, "optimizer": "adam", "layers": 10}, {"val_acc": 0.91}, status="failed",
                  config={"dataset": "wine", "model": "mlp"}, experiment="other"),
        "d": _run({"lr": 0.05, "optimizer": "it's \"quoted\"; DROP TABLE runs; --"}, {"val_acc": 0.5},
                  config={"dataset": "iris", "model": "logreg"}),
    }


def _ids(runs: dict[str, int], expr: str) -> set[str]:
    names = {v: k for k, v in runs.items()}
    return {names[r.id] for r in default_store().list_runs(filter=expr)}


def test_parse_builds_the_tree_with_precedence_and_over_or():
    tree = parse('status = "failed" or lr < 0.01 and not (model in ("cnn", \'mlp\'))')
    assert tree == BoolOp("or", (
        Comparison("status", 1, "=", ("failed",)),
        BoolOp("and", (Comparison("lr", 22, "<", (0.01,)),
                       Not(Comparison("model", 41, "in", ("cnn", "mlp"))))),
    ))


@pytest.mark.parametrize("expr, expected", [
    ("lr < 0.01", {"a", "c"}),
    ("lr < 0.01 and val_acc > 0.9", {"a", "c"}),
    ("lr <= 0.005 AND val_acc >= 0.95", {"a"}),
    ('status = "failed" or model in ("cnn","mlp")', {"a", "b", "c"}),
    ("not (lr < 0.01)", {"b", "d"}),
    ("model not in ('cnn', 'mlp')", {"d"}),
    ("layers > 2", {"b", "c"}),  # numerically: as text "10" < "2"
    ('optimizer = "adam"', {"a", "c"}),
    ("optimizer != 'adam' and (val_acc < 0.6 or lr = 1e-1)", {"b", "d"}),
    ("val_loss < 0.5", {"a"}),  # runs without the metric never match
    ("tag.note = 'best'", {"a"}),
    ('experiment = "other"', {"c"}),
    ("sweep == 'grid' and dataset <> 'wine'", {"a", "b"}),
    ("param.lr > 0.01 and metric.val_acc < 0.9", {"b", "d"}),
    ("`val_acc` > .9", {"a", "c"}),
    ("id >= 2 and id < 4", {"b", "c"}),
    ("created > '2000-01-01'", {"a", "b", "c", "d"}),
])
def test_valid_expressions_select_the_expected_runs(runs, expr, expected):
    assert _ids(runs, expr) == expected


@pytest.mark.parametrize("expr, position, reason", [
    ("lr <", 5, "expected a number"),
    ("lr < 0.01 and", 14, "expected a name"),
    ("(lr < 0.01", 11, "expected ')'"),
    ("lr 0.01", 4, "expected a comparison operator"),
    ("lr < 0.01 val_acc > 1", 11, "expected 'and', 'or' or the end"),
    ("lr < 0.01; DROP TABLE runs", 10, "unexpected character ';'"),
    ("status = 'failed", 10, "a quoted string is not closed"),
    ("lr < 1.2.3", 6, "is not a number"),
    ("model in ()", 11, "expected a number"),
    ("lr not 0.1", 8, "expected 'in' after 'not'"),
    ("", 1, "expected a comparison"),
    ("status = failed", 10, "expected a number or a \"quoted string\""),
    ("lr < 0.01 && val_acc > 0.9", 11, "unexpected character '&'"),
])
def test_invalid_expressions_name_the_position(expr, position, reason):
    with pytest.raises(FilterError) as caught:
        parse(expr)
    assert caught.value.position == position
    assert reason in caught.value.reason
    assert f"position {position}" in str(caught.value)
    assert caught.value.field == "filter"


def test_unknown_names_and_type_mistakes_are_refused_with_their_position(runs):
    store = default_store()
    with pytest.raises(FilterError, match="no run field, parameter or metric is named 'lrr'") as caught:
        store.list_runs(filter="val_acc > 0.5 and lrr < 0.1")
    assert caught.value.position == 19
    with pytest.raises(FilterError, match="metric 'val_acc' is a number"):
        store.list_runs(filter="val_acc = 'high'")
    with pytest.raises(FilterError, match="created is compared with a date"):
        store.list_runs(filter="created > 'yesterday'")
    with pytest.raises(FilterError, match="nested more than"):
        parse("(" * 60 + "lr < 1" + ")" * 60)


@pytest.mark.parametrize("expr", [
    "lr < 0.01; DELETE FROM runs",
    "lr < 0.01 -- comment",
    "lr < 0.01 /* x */",
    "status = 'x' || 'y'",
])
def test_sql_punctuation_is_a_syntax_error(runs, expr):
    with pytest.raises(DlxError):
        default_store().list_runs(filter=expr)


@pytest.mark.parametrize("expr, expected", [
    ("status = \"x' OR '1'='1\"", set()),
    ("status = 'succeeded\" OR 1=1 --'", set()),
    ("optimizer = \"it's \\\"quoted\\\"; DROP TABLE runs; --\"", {"d"}),  # data, matched exactly
    ("optimizer = 'it\\'s \"quoted\"; DROP TABLE runs; --'", {"d"}),
    ("model in ('cnn') or status = 'x; DROP TABLE runs'", {"a"}),
])
def test_injection_attempts_are_data(runs, expr, expected):
    assert _ids(runs, expr) == expected
    with default_store().session() as s:
        assert s.scalar(select(func.count()).select_from(RunRow)) == 4


def test_sql_keywords_as_names_are_only_names(runs):
    """`select`, `drop` or `union` are looked up as params or metrics, never spliced into SQL."""
    store = default_store()
    for word in ("select", "drop", "union", "runs", "1=1"):
        with pytest.raises(DlxError):
            store.list_runs(filter=f"{word} = 1")
    run = Run(store, runs["a"])
    run.log_params({"select": "* from runs"})
    run._stop.set()
    assert _ids(runs, "select = '* from runs'") == {"a"}
