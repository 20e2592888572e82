"""Plotly figures the pages share: training curves, confusion matrices; and the status colours."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlx.store import History

# Run status -> colour: queued grey, running blue, succeeded green, failed red, cancelled orange.
STATUS_COLORS = {"queued": "#808495", "running": "#1c83e1", "succeeded": "#21a354",
                 "failed": "#e0393e", "cancelled": "#f08c00"}
STATUS_BADGES = {"queued": "gray", "running": "blue", "succeeded": "green", "failed": "red",
                 "cancelled": "orange"}

TRAIN, VAL, TEST = "#1c83e1", "#f08c00", "#21a354"


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing); NaNs pass through."""
    out = np.empty_like(values, dtype=np.float64)
    average, norm = 0.0, 0.0
    for i, value in enumerate(values):
        if np.isnan(value):
            out[i] = np.nan
            continue
        average = weight * average + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out[i] = average / norm
    return out


def _epochs(history: History, steps_per_epoch: int | None) -> np.ndarray:
    """x positions in epochs when the run says how many steps an epoch has, else in steps."""
    return history.steps / steps_per_epoch if steps_per_epoch else history.steps.astype(float)


def curves(histories: dict[str, History], steps_per_epoch: int | None = None, epochs: int | None = None,
           height: int = 340) -> go.Figure:
    """Loss (per step, smoothed, and per epoch) beside accuracy (per epoch), test marked at the end.

    With `epochs` the x axis spans the whole run, so a live run's curves grow across it. With no
    points yet the empty axes say so: drawing them early means the first points only update a chart.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    empty = History(np.array([], dtype=np.int64), np.array([]), np.array([]))
    losses = histories.get("train_loss", empty)
    if len(losses):
        x = _epochs(losses, steps_per_epoch)
        fig.add_trace(go.Scatter(x=x, y=losses.values, mode="lines", name="train loss (step)",
                                 line=dict(color=TRAIN, width=1), opacity=0.25, legendgroup="train",
                                 showlegend=False, hovertemplate="%{y:.4f}"), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=smooth(losses.values), mode="lines", name="train",
                                 line=dict(color=TRAIN, width=2), legendgroup="train",
                                 hovertemplate="%{y:.4f}"), 1, 1)
    for key, name, color, col in (("val_loss", "validation", VAL, 1), ("train_acc", "train", TRAIN, 2),
                                  ("val_acc", "validation", VAL, 2)):
        history = histories.get(key, empty)
        if len(history):
            fig.add_trace(go.Scatter(x=_epochs(history, steps_per_epoch), y=history.values,
                                     mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=key == "val_loss" or (key == "train_acc" and not len(losses)),
                                     line=dict(color=color, width=2), marker=dict(size=7),
                                     hovertemplate="%{y:.4f}"), 1, col)
    for key, col in (("test_loss", 1), ("test_acc", 2)):
        history = histories.get(key, empty)
        if len(history):
            fig.add_trace(go.Scatter(x=_epochs(history, steps_per_epoch), y=history.values,
                                     mode="markers", name="test", legendgroup="test",
                                     showlegend=key == "test_acc",
                                     marker=dict(color=TEST, size=13, symbol="star"),
                                     hovertemplate="test %{y:.4f}"), 1, col)
    axis = "epoch" if steps_per_epoch else "step"
    fig.update_xaxes(title_text=axis, rangemode="tozero")
    if steps_per_epoch and epochs:
        fig.update_xaxes(range=[0, epochs * 1.02])
    if not fig.data:
        for col, axis in ((1, ""), (2, "2")):
            # Plotly.js draws only subplots that have a trace: an empty one keeps the accuracy
            # axes (and their annotation) in place until the first point.
            fig.add_trace(go.Scatter(x=[], y=[], hoverinfo="skip", showlegend=False), 1, col)
            fig.add_annotation(text="waiting for the first steps", showarrow=False, x=0.5, y=0.5,
                               xref=f"x{axis} domain", yref=f"y{axis} domain",
                               font=dict(size=14, color="#808495"))
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=1, xanchor="right"),
                      uirevision="curves")  # keeps zoom while the figure refreshes
    return fig


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                     height: int | None = None) -> go.Figure:
    """Counts as text, colour as each true class's share (rows sum to 1), so small classes show too."""
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    labels = [str(c) for c in classes]
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, text=counts, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1, colorbar=dict(title="share", tickformat=".0%"),
        hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%})<extra></extra>"))
    size = height or min(640, 160 + 36 * len(labels))
    fig.update_layout(height=size, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="predicted", type="category", side="bottom"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig
