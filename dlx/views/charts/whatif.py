"""The What-if tab's own figure: an image as one square point per pixel, for a lasso to brush over."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def brush_canvas(picture: np.ndarray, side: int = 360) -> go.Figure:
    """(H, W) grey values as a grid of square markers; the lasso's selected points are the brushed pixels."""
    height, width = picture.shape
    ys, xs = np.mgrid[0:height, 0:width]
    figure = go.Figure(go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", hoverinfo="x+y",
                                  marker=dict(color=picture.ravel(), colorscale="gray", symbol="square",
                                              size=max(3, (side - 40) // max(height, width)))))
    figure.update_layout(dragmode="lasso", height=side, width=side, margin=dict(l=10, r=10, t=10, b=10),
                         xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
    return figure
