"""The Projector's scatter: up to 10,000 samples as WebGL points (Scattergl), coloured by a class, correct or
wrong, confidence or a metadata column; each point carries its sample's index (customdata) for clicks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dlx.explain.slices import CONFIDENCE, CORRECT
from dlx.views.charts.style import GREEN, GREY, PALETTE, RED

CONTINUOUS = "Viridis"
WRONG, RIGHT = "wrong", "correct"


def projector_figure(xy: np.ndarray, frame: pd.DataFrame, colour_by: str, hover: list[str] | pd.Series,
                     highlight: np.ndarray | None = None, highlight_name: str = "in slice") -> go.Figure:
    """One Scattergl trace per colour (a legend entry each; confidence: one trace on a colour scale). With
    `highlight` (a mask over the rows), the slice is drawn in red over the rest in grey."""
    index = np.asarray(frame.index)
    hover = np.asarray(hover, dtype=object)
    size = 6 if len(frame) <= 2000 else 4
    fig = go.Figure()

    def trace(rows: np.ndarray, name: str, color, **marker) -> None:
        fig.add_trace(go.Scattergl(x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=name,
                                   customdata=[[int(i)] for i in index[rows]], text=hover[rows].tolist(),
                                   hovertemplate="%{text}<extra></extra>",
                                   marker=dict(color=color, size=size, opacity=0.85, **marker),
                                   unselected=dict(marker=dict(opacity=0.6))))  # a click keeps the rest seen

    if highlight is not None:
        trace(np.flatnonzero(~highlight), "other", GREY)
        trace(np.flatnonzero(highlight), highlight_name, RED)
    elif colour_by == CONFIDENCE:
        rows = np.arange(len(frame))
        trace(rows, CONFIDENCE, frame[CONFIDENCE].to_numpy(), colorscale=CONTINUOUS, cmin=0.0, cmax=1.0,
              colorbar=dict(title=CONFIDENCE))
    elif colour_by == CORRECT:
        correct = frame[CORRECT].to_numpy(bool)
        trace(np.flatnonzero(correct), RIGHT, GREEN)
        trace(np.flatnonzero(~correct), WRONG, RED)  # on top: the errors are what one looks for
    else:
        values = frame[colour_by].astype(str).to_numpy()
        for k, value in enumerate(sorted(set(values), key=_natural)):
            trace(np.flatnonzero(values == value), value, PALETTE[k % len(PALETTE)])
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=30, b=10), legend=dict(itemsizing="constant"),
                      dragmode="pan", clickmode="event+select", hovermode="closest",
                      hoverlabel=dict(font=dict(family="monospace")))  # an image's shade thumbnail keeps its grid
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    return fig


def _natural(value: str) -> tuple:
    """Numbers in numeric order ("2" before "10"), then the rest alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
