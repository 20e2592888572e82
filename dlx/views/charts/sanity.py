"""The sanity checks' figure: each method's similarity to the trained model's maps as layers are randomised."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from dlx.views.charts.explain import method_colour
from dlx.views.charts.style import GREY
from dlx.views.text import plot

MEASURE_TITLES = {"spearman": "Spearman rank correlation, absolute maps",
                  "spearman_signed": "Spearman rank correlation, signed maps",
                  "ssim": "SSIM", "hog": "HOG similarity"}


def randomisation_curves(result: dict[str, Any], measure: str = "spearman", steps: str = "curve",
                         height: int = 360) -> go.Figure:
    """As in the paper's figure: similarity (mean and 95% interval) per method, from the trained model
    through each cascading step (`steps="curve"`) or per layer randomised alone (`"independent"`),
    with the verdict's threshold dashed."""
    fig = go.Figure()
    cascading = steps == "curve"
    names = [plot(name) for name in result["layers"][::-1]] if cascading else [plot(n) for n in result["layers"]]
    x = (["trained"] + names) if cascading else names
    for method, entry in result["methods"].items():
        points = entry[steps]
        if not points or points[0].get(measure) is None:
            continue
        means = [p[measure] for p in points]
        lows = [p[measure] - p[f"{measure}_ci"][0] for p in points]
        highs = [p[f"{measure}_ci"][1] - p[measure] for p in points]
        if cascading:  # the trained model against itself: identical maps
            means, lows, highs = [1.0] + means, [0.0] + lows, [0.0] + highs
        colour = method_colour(method)
        label = plot(entry.get("label", method))
        fig.add_trace(go.Scatter(
            x=x, y=means, mode="lines+markers", name=label, line=dict(color=colour, width=2),
            error_y=dict(type="data", symmetric=False, array=highs, arrayminus=lows, color=colour, thickness=1),
            hovertemplate=f"{label}<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
    if measure == "spearman":
        fig.add_hline(y=result["threshold"], line=dict(color=GREY, dash="dash", width=1),
                      annotation_text=f"fails above {result['threshold']}", annotation_position="top right")
    title = "randomised cumulatively, from the output layer down" if cascading else "randomised one at a time"
    fig.update_xaxes(title_text=f"layers {title}", type="category")
    fig.update_yaxes(title_text=MEASURE_TITLES[measure], range=[-0.2 if "spearman" in measure else 0, 1.05])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=20, b=10), legend=dict(orientation="h", y=-0.3))
    return fig
