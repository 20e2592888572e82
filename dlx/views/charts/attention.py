"""Plotly figures (and one HTML snippet) for transformers: attention model and head views,
token score bars, coloured sentences, attention/attribution agreement, ViT maps on the image.

Inputs are plain arrays from dlx.explain.attention / text, so these build without a model.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlx.views.charts.explain import image_rgb
from dlx.views.charts.style import AGAINST_RGB, AGREEMENT, ATTENTION, FOR_RGB, PALETTE, VIT_MAP
from dlx.views.text import plot


def model_view(maps: np.ndarray, labels: Sequence[str], cell: int = 110) -> go.Figure:
    """Every layer (rows) × head (columns) as a small token-by-token heatmap (bertviz's model view).

    `maps` (L, H, T, T); hovering names the query (row) and the key (column) it attends to.
    """
    layers, heads = maps.shape[:2]
    fig = make_subplots(rows=layers, cols=heads, horizontal_spacing=0.008, vertical_spacing=0.012,
                        row_titles=[f"L{l}" for l in range(layers)], column_titles=[f"H{h}" for h in range(heads)])
    labels = [plot(t) for t in labels]  # tokens of a user's text: shown as text in hover labels
    text = [[f"{q} → {k}" for k in labels] for q in labels]
    for l in range(layers):
        for h in range(heads):
            fig.add_trace(go.Heatmap(z=maps[l, h], zmin=0, zmax=1, colorscale=ATTENTION, showscale=False,
                                     text=text, hovertemplate=f"layer {l} head {h}<br>%{{text}}: %{{z:.3f}}"
                                                              "<extra></extra>"), row=l + 1, col=h + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(height=max(260, cell * layers), width=max(400, cell * heads),
                      margin=dict(l=10, r=40, t=30, b=10))
    return fig


def attention_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str = "") -> go.Figure:
    """One head (or a fused map) enlarged, with the tokens on both axes (rows attend to columns)."""
    ticks = [f"{i}:{plot(t)}" for i, t in enumerate(labels)]  # positions keep repeated words apart
    fig = go.Figure(go.Heatmap(z=matrix, x=ticks, y=ticks, zmin=0, zmax=float(max(matrix.max(), 1e-9)),
                               colorscale=ATTENTION, hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="query")
    fig.update_xaxes(title="key", tickangle=-45)
    fig.update_layout(title=title, height=max(320, 22 * len(labels) + 140), margin=dict(l=10, r=10, t=40, b=10))
    return fig


HEAD_CHAR = 0.045  # a 13 px token character's width on the head view's x axis (query 0 to key 1)


def head_view(maps: np.ndarray, labels: Sequence[str], layer: int, heads: Sequence[int],
              threshold: float = 0.02, levels: int = 6) -> go.Figure:
    """Tokens in two columns, a line from each query (left) to each key (right) as thick and opaque
    as the attention, one colour per head (bertviz's head view). Lines under `threshold` are left
    out; weights are drawn at `levels` widths, one trace per head and width, so the figure stays light."""
    n = len(labels)
    y = np.arange(n)[::-1].astype(float)
    fig = go.Figure()
    edges = np.linspace(threshold, 1.0, levels + 1)
    for h in heads:
        colour = PALETTE[h % len(PALETTE)]
        a = maps[layer, h]
        for level in range(levels):
            low, high = edges[level], edges[level + 1]
            pairs = np.argwhere((a >= low) & ((a < high) | (level == levels - 1)))
            if not len(pairs):
                continue
            xs = np.tile([0.0, 1.0, np.nan], len(pairs))
            ys = np.column_stack([y[pairs[:, 0]], y[pairs[:, 1]], np.full(len(pairs), np.nan)]).ravel()
            middle = (low + high) / 2
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=0.5 + 6 * middle),
                                     opacity=min(1.0, 0.2 + middle), name=f"head {h}", legendgroup=f"h{h}",
                                     showlegend=not fig.data or fig.data[-1].legendgroup != f"h{h}",
                                     hoverinfo="skip"))
    # The tokens in a 13 px font, the x range widened to the longest so none is cut or runs into the lines.
    room = 0.1 + HEAD_CHAR * max((len(str(t)) for t in labels), default=1)
    for x, anchor in ((-0.03, "right"), (1.03, "left")):
        fig.add_trace(go.Scatter(x=[x] * n, y=y, mode="text", text=[plot(t) for t in labels],
                                 textposition=f"middle {anchor}", textfont=dict(size=13), cliponaxis=False,
                                 showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(visible=False, range=[-room, 1 + room])
    fig.update_yaxes(visible=False)
    fig.update_layout(height=max(260, 24 * n + 60), margin=dict(l=10, r=10, t=30, b=10),
                      title=f"layer {layer}", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def token_bars(scores_by_name: dict[str, np.ndarray], labels: Sequence[str]) -> go.Figure:
    """Rollout, relevance or any score over the tokens (or words) as grouped bars, one per name."""
    ticks = [f"{i}:{plot(t)}" for i, t in enumerate(labels)]
    fig = go.Figure([go.Bar(x=ticks, y=values, name=name, marker_color=PALETTE[i % len(PALETTE)])
                     for i, (name, values) in enumerate(scores_by_name.items())])
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_tickangle=-45, legend=dict(orientation="h", y=1.1))
    return fig


def _colour(strength: float, against: bool) -> str:
    """Red for evidence for the target, blue against; `strength` in [0, 1] sets the opacity."""
    r, g, b = AGAINST_RGB if against else FOR_RGB
    return f"rgba({r},{g},{b},{0.85 * strength:.3f})"


def coloured_sentence(words: Sequence[str], values: np.ndarray, signed: bool = True) -> str:
    """The sentence as HTML spans, each word's background coloured by its attribution.

    Words are escaped (a sentence is user input). A signed map uses a scale symmetric around zero
    fixed by the largest magnitude; an unsigned one (rollout: all positive, nearly even) runs from
    its smallest to its largest value, so its differences show. Each word's tooltip has its value.
    """
    values = np.asarray(values, dtype=float)
    low = 0.0 if signed or not len(values) else float(values.min())
    top = float(np.abs(values).max() if signed else values.max() - low) if len(values) else 0.0
    spans = []
    for w, v in zip(words, values):
        strength = min(1.0, (abs(v) if signed else v - low) / top) if top > 0 else 0.0
        spans.append(f'<span title="{v:+.4f}" style="background:{_colour(strength, signed and v < 0)};'
                     f'padding:1px 3px;margin:1px;border-radius:3px;display:inline-block">{html.escape(w)}</span>')
    return f'<div style="line-height:2;font-size:1.05em">{" ".join(spans)}</div>'


def agreement_heatmap(matrix: np.ndarray, rollout_rho: float | None = None) -> go.Figure:
    """Spearman correlation of each head's attention with the attributions (layers × heads)."""
    layers, heads = matrix.shape
    title = "Spearman ρ (attention vs attribution)"
    if rollout_rho is not None and np.isfinite(rollout_rho):
        title += f"; rollout ρ = {rollout_rho:.2f}"
    fig = go.Figure(go.Heatmap(z=matrix, x=[f"H{h}" for h in range(heads)], y=[f"L{l}" for l in range(layers)],
                               zmin=-1, zmax=1, colorscale=AGREEMENT, colorbar=dict(title="ρ"),
                               hovertemplate="%{y} %{x}: ρ = %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=max(240, 36 * layers + 100), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def vit_overlays(image: np.ndarray, grids: dict[str, np.ndarray], opacity: float = 0.55, cols: int = 4) -> go.Figure:
    """The image (C, H, W in [0, 1]) under each patch-grid map (rollout, a head's CLS attention...),
    each map stretched over the image (a patch covers its pixels)."""
    rgb = image_rgb(image)
    height, width = rgb.shape[:2]
    names = list(grids)
    rows = -(-len(names) // cols)
    fig = make_subplots(rows=rows, cols=min(cols, len(names)), subplot_titles=names,
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    for i, name in enumerate(names):
        grid = np.asarray(grids[name], dtype=float)
        r, c = divmod(i, cols)
        fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), row=r + 1, col=c + 1)
        g = grid.shape[0]
        step_y, step_x = height / g, width / grid.shape[1]
        fig.add_trace(go.Heatmap(z=grid, x0=(step_x - 1) / 2, dx=step_x, y0=(step_y - 1) / 2, dy=step_y,
                                 zmin=0, zmax=float(grid.max() or 1.0), colorscale=VIT_MAP, opacity=opacity,
                                 showscale=False, hovertemplate="patch (%{y:.0f}, %{x:.0f}): %{z:.3f}<extra></extra>"),
                      row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(height=230 * rows + 40, margin=dict(l=10, r=10, t=30, b=10))
    return fig
