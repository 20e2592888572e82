"""Figures of explanations over training: one sample's maps per kept checkpoint, scores against the epoch,
and each sentence coloured per epoch (text)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlx.explain.image.localisation import attribution_map
from dlx.explain.over_training import OverTraining
from dlx.explain.scoring import METRICS, label
from dlx.views.charts.attention import coloured_sentence
from dlx.views.charts.explain import method_colour
from dlx.views.charts.style import ATTENTION, DIVERGING
from dlx.views.text import plot

# metric -> its title over the epochs
CURVES = {"spearman": "Spearman with the final map ↑ (when it settles)", **{m: METRICS[m][0] for m in
                                                                          ("deletion_auc", "insertion_auc", "mask_mass")}}


def map_rows(result: OverTraining, method: str, classes: Sequence[str], cell: int = 120) -> go.Figure:
    """One row per sample, one column per kept checkpoint: the method's map (each to its own largest
    |value|), titled with the epoch and the prediction and its probability under that checkpoint."""
    n, c = len(result.indices), len(result.names)
    titles = []
    for i in range(n):
        for k in range(c):
            p = result.probs[k, i]
            titles.append(plot(f"#{result.indices[i]} · epoch {result.epochs[k]}: "
                               f"{classes[int(p.argmax())]} {p.max():.0%}"))
    fig = make_subplots(rows=n, cols=c, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.3 / max(n, 1))
    for i in range(n):
        for k in range(c):
            values = result.maps[method][k][i].float()
            shown = attribution_map(values[None])[0].numpy() if values.ndim == 3 else values.numpy()[None]
            top = float(np.abs(shown).max()) or 1.0
            fig.add_trace(go.Heatmap(z=shown / top, customdata=shown, coloraxis="coloraxis",
                                     hovertemplate="%{customdata:.3g}<extra></extra>"), i + 1, k + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x" if result.maps[method][0][0].ndim == 3 else None)
    fig.update_annotations(font_size=10)
    fig.update_layout(height=max(200, cell * n + 40), margin=dict(l=5, r=5, t=30, b=5),
                      coloraxis=dict(colorscale=DIVERGING, cmin=-1, cmax=1, showscale=False))
    return fig


def score_curves(result: OverTraining, height: int = 300) -> go.Figure:
    """Each score's mean over the samples against the epoch, one line per method."""
    metrics = [m for m in CURVES if all(m in result.metrics[k] for k in result.metrics)]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[CURVES[m] for m in metrics],
                        horizontal_spacing=0.06)
    for method in result.metrics:
        for col, metric in enumerate(metrics, 1):
            fig.add_trace(go.Scatter(x=result.epochs, y=result.curve(method, metric), mode="lines+markers",
                                     name=plot(label(method)), legendgroup=method, showlegend=col == 1,
                                     line=dict(color=method_colour(method), width=2),
                                     hovertemplate="epoch %{x}: %{y:.3f}<extra></extra>"), 1, col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig


def sentence_rows(result: OverTraining, method: str, sample: int, classes: Sequence[str], signed: bool) -> str:
    """HTML: the sentence coloured by the method's token attributions, one line per kept checkpoint."""
    tokens = (result.tokens or [[]])[sample]
    lines = []
    for k, epoch in enumerate(result.epochs):
        p = result.probs[k, sample]
        lines.append(f'<div><b>epoch {epoch}</b> · {plot(classes[int(p.argmax())])} {p.max():.0%}'
                     f'{coloured_sentence(tokens, result.maps[method][k][sample].numpy(), signed)}</div>')
    return "".join(lines)


def attention_frames(result: OverTraining, sample: int, cell: int = 260) -> go.Figure:
    """The last layer's attention (heads averaged) for one sentence, one heatmap per kept checkpoint."""
    tokens = [plot(t) for t in (result.tokens or [[]])[sample]]
    c = len(result.epochs)
    fig = make_subplots(rows=1, cols=c, subplot_titles=[f"epoch {e}" for e in result.epochs], horizontal_spacing=0.02)
    for k in range(c):
        matrix = (result.attention or [])[k][sample].numpy()
        fig.add_trace(go.Heatmap(z=matrix, x=list(range(len(tokens))), y=list(range(len(tokens))),
                                 coloraxis="coloraxis", hovertemplate="%{z:.2f}<extra></extra>"), 1, k + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(autorange="reversed", tickvals=list(range(len(tokens))), ticktext=tokens, showticklabels=False)
    fig.update_yaxes(showticklabels=True, col=1)
    fig.update_layout(height=cell + 60, margin=dict(l=10, r=10, t=30, b=10),
                      coloraxis=dict(colorscale=ATTENTION, cmin=0, showscale=False))
    return fig
