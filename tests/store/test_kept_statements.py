"""A listing's statements are kept per store by their arguments (dlx.store.runs.Plans) and used again only
while the names in them mean what they meant: a name that becomes a parameter is filtered as one at once."""
from __future__ import annotations

from dlx.store import default_store
from dlx.tracking import Run


def _run(store, metric: float | None = None, param: float | None = None) -> int:
    run = Run(store, store.create_run({"dataset": "digits", "model": "mlp"}, status="running"))
    if metric is not None:
        run.log_metric("score", metric, 1)
    if param is not None:
        run.log_params({"score": param})
    run.finish()
    return run.id


def test_a_kept_filter_follows_a_name_that_becomes_a_parameter():
    store = default_store()
    by_metric = _run(store, metric=0.5)
    assert [r.id for r in store.list_runs(filter="score > 0.1", sort="score")] == [by_metric]
    assert store.count_runs(filter="score > 0.1") == 1
    assert [r.id for r in store.list_runs(filter="score > 0.1", sort="score")] == [by_metric]  # kept, used again
    by_param = _run(store, param=5.0)  # parameters come before metrics: "score" now names the parameter
    assert [r.id for r in store.list_runs(filter="score > 0.1")] == [by_param]
    assert store.count_runs(filter="score > 0.1") == 1
    assert [r.id for r in store.list_runs(filter="metric.score > 0.1")] == [by_metric]


def test_kept_pages_see_new_runs_and_other_pages():
    store = default_store()
    first = [_run(store, metric=i / 10) for i in range(3)]
    assert [r.id for r in store.list_runs(sort="score", limit=2)] == first[::-1][:2]
    newer = _run(store, metric=0.9)
    assert [r.id for r in store.list_runs(sort="score", limit=2)] == [newer, first[2]]
    assert [r.id for r in store.list_runs(sort="score", limit=2, offset=2)] == [first[1], first[0]]
    assert store.count_runs(bound=2) == 3
