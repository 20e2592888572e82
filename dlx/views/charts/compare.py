"""Figures comparing runs: overlaid reduced curves with min-max bands, group means, parallel coordinates, scatter."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dlx.store import RunInfo
from dlx.store.reduction import Reduced
from dlx.views.charts.curves import smooth
from dlx.views.charts.style import GREY, METRIC, PALETTE
from dlx.views.compare import GroupCurve, numeric, spans_decades
from dlx.views.text import plot, shorten, template

LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1)  # above the plot: clear of the x title
XPositions = Callable[[int, np.ndarray], "np.ndarray | None"]


def overlay(series: dict[int, Reduced], labels: dict[int, str], colors: dict[int, str], key: str,
            smoothing: float = 0.0, log_y: bool = False, height: int = 380, x_of: XPositions | None = None,
            x_title: str = "step", legend: bool = True) -> go.Figure:
    """One line per run (each bucket's last value, optionally EMA-smoothed) over a faint min-max band,
    so a spike shows even where the line is smoothed or reduced; the series' first point is drawn too.
    `x_of(run_id, steps)` places steps on another x axis (epoch, wall time); a run it gives None for is left out."""
    fig = go.Figure()
    for run_id, reduced in series.items():
        if not len(reduced):
            continue
        color = colors[run_id]
        steps = np.concatenate([[reduced.first_step], reduced.steps]) if reduced.first_step < reduced.steps[0] \
            else reduced.steps
        y = np.concatenate([[reduced.first], reduced.last]) if len(steps) > len(reduced.steps) else reduced.last
        x = steps if x_of is None else x_of(run_id, steps)
        if x is None:
            continue
        band = x[len(x) - len(reduced.steps):]
        band_x = np.concatenate([band, band[::-1]])
        band_y = np.concatenate([reduced.max, reduced.min[::-1]])
        fig.add_trace(go.Scatter(x=band_x, y=band_y, fill="toself", fillcolor=color, opacity=0.15,
                                 line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=str(run_id)))
        fig.add_trace(go.Scatter(x=x, y=smooth(y, smoothing) if smoothing else y,
                                 mode="lines" if len(x) > 30 else "lines+markers",  # a few points: visible
                                 name=plot(shorten(labels[run_id], 80)), line=dict(color=color, width=2),
                                 legendgroup=str(run_id),
                                 hovertemplate=f"{x_title} %{{x:.4g}}: %{{y:.4g}}"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=10), title=plot(shorten(key, 80)),
                      xaxis_title=x_title,
                      yaxis_type="log" if log_y else "linear", legend=LEGEND, showlegend=legend)
    return fig


def grouped(curves: dict[str, GroupCurve], key: str, log_y: bool = False, height: int = 380) -> go.Figure:
    """One line per group of runs (their mean) over the band from the lowest to the highest run."""
    fig = go.Figure()
    for i, (name, curve) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=np.concatenate([curve.steps, curve.steps[::-1]]),
                                 y=np.concatenate([curve.high, curve.low[::-1]]), fill="toself", fillcolor=color,
                                 opacity=0.2, line=dict(width=0), hoverinfo="skip", showlegend=False,
                                 legendgroup=name))
        fig.add_trace(go.Scatter(x=curve.steps, y=curve.mean, name=plot(f"{shorten(name, 80)} ({curve.runs} runs)"),
                                 legendgroup=name,
                                 mode="lines" if len(curve.steps) > 30 else "lines+markers",
                                 line=dict(color=color, width=2), hovertemplate="step %{x}: mean %{y:.4g}"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=10), title=plot(f"{shorten(key, 80)}: mean and min–max by group"),
                      xaxis_title="step", yaxis_type="log" if log_y else "linear", legend=LEGEND)
    return fig


def group_finals(runs: Sequence[RunInfo], values: Sequence[Any], param: str, metric: str,
                 height: int = 300) -> go.Figure:
    """A grouping parameter's values against the runs' final metric: each group's mean with its min–max as
    error bars, on a log x axis where the values span decades (lr 1e-4 .. 1e-1)."""
    by_value: dict[float, list[float]] = {}
    for run, value in zip(runs, values):
        final = run.metrics.get(metric)
        if value is not None and final is not None:
            by_value.setdefault(float(value), []).append(final)
    xs = sorted(by_value)
    means = [float(np.mean(by_value[x])) for x in xs]
    fig = go.Figure(go.Scatter(
        x=xs, y=means, mode="lines+markers", name=plot(f"mean {shorten(metric, 60)}"), line=dict(color=PALETTE[0]),
        error_y=dict(type="data", symmetric=False, array=[max(by_value[x]) - m for x, m in zip(xs, means)],
                     arrayminus=[m - min(by_value[x]) for x, m in zip(xs, means)]),
        text=[f"{len(by_value[x])} runs" for x in xs], hovertemplate="%{x:g}: %{y:.4g} (%{text})<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=True, legend=LEGEND,
                      title=plot(f"final {shorten(metric, 60)} by {shorten(param, 60)}"),
                      xaxis=dict(title=plot(shorten(param, 80)), type="log" if spans_decades(values) else "-"),
                      yaxis_title=plot(shorten(metric, 80)))
    return fig


def parallel_coordinates(runs: Sequence[RunInfo], table: dict[str, list[Any]], params: Sequence[str],
                         metric: str, height: int = 380) -> go.Figure:
    """Parameters to a chosen final metric, one line per run coloured by that metric; text values get ticks.

    Parallel coordinates have no log axis: a parameter spread over decades (lr) is drawn as its log10,
    ticked at each power of ten with the value itself, and labelled "(log)"."""
    dimensions = []
    for key in params:
        values = table[key]
        if spans_decades(values):
            logs = [np.nan if v is None else float(np.log10(v)) for v in values]
            decades = list(range(int(np.floor(np.nanmin(logs))), int(np.ceil(np.nanmax(logs))) + 1))
            dimensions.append(dict(label=plot(f"{shorten(key, 34)} (log)"), values=logs, tickvals=decades,
                                   ticktext=[f"1e{d}" for d in decades]))
        elif numeric(values):
            dimensions.append(dict(label=plot(shorten(key, 40)), values=[np.nan if v is None else v for v in values]))
        else:
            names = sorted({str(v) for v in values})
            codes = [names.index(str(v)) for v in values]
            dimensions.append(dict(label=plot(shorten(key, 40)), values=codes, tickvals=list(range(len(names))),
                                   ticktext=[plot(shorten(name, 40)) for name in names]))
    finals = [run.metrics.get(metric) for run in runs]
    finals = [np.nan if v is None else v for v in finals]
    dimensions.append(dict(label=plot(shorten(metric, 40)), values=finals))
    fig = go.Figure(go.Parcoords(dimensions=dimensions, line=dict(color=finals, colorscale=METRIC,
                                                                  showscale=True)))
    fig.update_layout(height=height, margin=dict(l=60, r=60, t=40, b=20))
    return fig


def scatter(runs: Sequence[RunInfo], values: Sequence[Any], param: str, metric: str,
            colors: dict[int, str], height: int = 340) -> go.Figure:
    """A parameter against a final metric, one point per run in its colour, named in the legend; a parameter
    spread over decades (lr) on a log axis."""
    fig = go.Figure()
    text = not numeric(values)
    for run, value in zip(runs, values):
        x = "(none)" if value is None and text else plot(shorten(value, 80)) if text else value
        fig.add_trace(go.Scatter(x=[x], y=[run.metrics.get(metric)], mode="markers",
                                 name=plot(shorten(run.label, 60)),
                                 marker=dict(size=10, color=colors.get(run.id, GREY)),
                                 hovertemplate=f"{template(shorten(run.label, 80))}<br>%{{x}}: %{{y:.4g}}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=plot(shorten(param, 80)),
                      xaxis_type="log" if spans_decades(values) else "-", yaxis_title=plot(shorten(metric, 80)),
                      showlegend=True, legend=dict(title="run"))
    return fig
