"""The figures pages share: training curves over epochs, confusion matrices coloured by share."""
from __future__ import annotations

import numpy as np

from dlx.store import History
from dlx.views.charts import curves


def history(steps, values) -> History:
    return History(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=float), np.zeros(len(steps)))


def test_curves_put_loss_beside_accuracy_in_epochs_with_test_marked():
    histories = {"train_loss": history(range(1, 21), np.linspace(2, 0.1, 20)),
                 "val_loss": history([10, 20], [0.5, 0.2]), "val_acc": history([10, 20], [0.8, 0.9]),
                 "test_acc": history([20], [0.92])}
    figure = curves.curves(histories, steps_per_epoch=10, epochs=4)
    by_name = {(trace.name, trace.xaxis): trace for trace in figure.data}
    assert list(by_name[("validation", "x2")].x) == [1.0, 2.0]  # accuracy panel, in epochs
    assert list(by_name[("test", "x2")].y) == [0.92]
    assert figure.layout.xaxis.range == (0, 4 * 1.02)  # a live run grows across the whole axis


def test_smoothing_follows_the_trend_and_keeps_gaps():
    smoothed = curves.smooth(np.array([1.0, 1.0, np.nan, 0.0]))
    assert smoothed[0] == 1.0 and np.isnan(smoothed[2]) and 0 < smoothed[3] < 1


def test_confusion_matrix_colours_each_true_class_by_its_share_and_prints_counts():
    figure = curves.confusion_matrix([[8, 2], [0, 0]], ["cat", "dog"])
    heatmap = figure.data[0]
    assert np.allclose(heatmap.z, [[0.8, 0.2], [0.0, 0.0]])  # an empty class stays 0, not NaN
    assert heatmap.text.tolist() == [[8, 2], [0, 0]]
    assert list(heatmap.x) == ["cat", "dog"]


def test_curves_without_points_show_empty_axes_that_say_they_wait():
    figure = curves.curves({}, steps_per_epoch=34, epochs=3)
    # one empty trace per subplot: Plotly.js leaves out the axes of a subplot without any
    assert [(t.xaxis, t.yaxis, len(t.x)) for t in figure.data] == [("x", "y", 0), ("x2", "y2", 0)]
    waiting = [a for a in figure.layout.annotations if a.text == "waiting for the first steps"]
    assert [(a.xref, a.yref) for a in waiting] == [("x domain", "y domain"), ("x2 domain", "y2 domain")]


def test_every_key_curves_leave_out_is_grouped_onto_a_chart():
    keys = ["epoch", "grad/max", "grad/norm", "loss", "lr", "train_acc", "train_f1", "train_loss",
            "train_loss_epoch", "val_f1", "val_loss"]
    assert curves.metric_groups(keys) == {
        "epoch": ["epoch"], "grad": ["grad/max", "grad/norm"], "loss": ["loss"], "lr": ["lr"],
        "f1": ["train_f1", "val_f1"], "loss_epoch": ["train_loss_epoch"]}


def test_metrics_figure_draws_one_line_per_key_in_a_chart_per_group():
    histories = {"loss": history(range(100), 1 / np.arange(1, 101)), "train_f1": history([1, 2], [0.5, 0.6]),
                 "val_f1": history([2], [0.55])}
    figure = curves.metrics_figure(curves.metric_groups(histories), histories)
    by_name = {trace.name: trace for trace in figure.data}
    assert len(by_name["loss"].y) == 100 and by_name["loss"].mode == "lines"
    assert by_name["val_f1"].mode == "markers"  # a single point still shows
    assert by_name["train_f1"].xaxis == by_name["val_f1"].xaxis != by_name["loss"].xaxis
    assert [a.text for a in figure.layout.annotations] == ["loss", "f1"]


def test_a_grid_of_groups_puts_each_on_its_own_titled_subplot_and_figures_share_no_layout():
    keys = [f"metric{i}" for i in range(7)]
    histories = {key: history(range(10), np.arange(10) * i) for i, key in enumerate(keys)}
    figure = curves.metrics_figure(curves.metric_groups(keys), histories)
    titles = {a.text: a for a in figure.layout.annotations}
    for index, trace in enumerate(figure.data, start=1):
        assert (trace.xaxis, trace.yaxis) == (("x", "y") if index == 1 else (f"x{index}", f"y{index}"))
        x_axis = figure.layout[f"xaxis{'' if index == 1 else index}"]
        title = titles[trace.name]  # centred above its own subplot
        assert abs(title.x - sum(x_axis.domain) / 2) < 1e-9 and x_axis.title.text == "step"
    assert figure.layout.height == 3 * 260  # 7 charts, 3 to a row
    taller = curves.metrics_figure(curves.metric_groups(keys), histories, row_height=400)
    assert taller.layout.height == 3 * 400 and figure.layout.height == 3 * 260
    empty = curves.curves({})
    assert empty.layout.annotations[-1].text == "waiting for the first steps"
    assert [a.text for a in curves.curves({}).layout.annotations].count("waiting for the first steps") == 2
