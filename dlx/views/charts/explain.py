"""Plotly figures for explanations: heatmap overlays, attribution bars, beeswarm, deletion/insertion curves.

Colours: showing "all" of the maps, a diverging scale centred on zero (red for evidence for the
target, blue against; a map without a sign, such as |gradient|, uses the red half); showing one
part or the magnitude, a sequential scale from zero. Each map is scaled to its own 99.5th
percentile of |attribution| (methods differ by orders of magnitude), so one colour bar serves
every map in a grid. Each attribution method has one colour
(`method_colour`), the same in every chart: its map titles, its curves, its bars. The colours are
dlx.views.charts.style's.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlx.explain import METHODS, get_method
from dlx.explain.image.gallery import Gallery
from dlx.explain.image.localisation import attribution_map
from dlx.explain.image.uploads import for_display
from dlx.views.charts.style import AGAINST, DARK_GREY, DIVERGING, FEATURE_VALUE, FOR, GREY, MASK, PALETTE, SEQUENTIAL
from dlx.views.text import plot

SIGNS = ("all", "positive", "negative", "absolute")


def method_colours() -> dict[str, str]:
    """One colour per registered attribution method, under its name and its label, by registry order."""
    colours: dict[str, str] = {}
    for i, method in enumerate(METHODS.values()):
        colours[method.name] = colours[method.label] = PALETTE[i % len(PALETTE)]
    return colours


def method_colour(method: str) -> str:
    """The colour of a method (its registry name or its label) in every chart; grey for the random reference."""
    return method_colours().get(method, GREY)


def apply_sign(values: np.ndarray, sign: str) -> np.ndarray:
    """The part of a map to show: all of it, its positive or negative part, or its magnitude."""
    if sign == "positive":
        return np.clip(values, 0, None)
    if sign == "negative":
        return np.clip(-values, 0, None)
    if sign == "absolute":
        return np.abs(values)
    return values


@dataclass
class MapCell:
    """One heatmap in the grid: a (H, W) map and how to title and colour it."""

    title: str
    values: np.ndarray
    signed: bool
    method: str = ""  # its registry name: the title takes the method's colour


@dataclass
class SampleRow:
    """One sample: its image (C, H, W in [0, 1]), its top-k prediction, an optional mask, its maps."""

    image: np.ndarray
    caption: str
    top_k: list[tuple[str, float]]
    maps: list[MapCell] = field(default_factory=list)
    mask: np.ndarray | None = None


def gallery_rows(gallery: Gallery, top_k: int = 3) -> list[SampleRow]:
    """The grid's rows of a gallery, each map titled with its method, time per sample and whether it was cached."""
    classes = gallery.loaded.meta.classes
    rows = []
    for i, x in enumerate(for_display(gallery.loaded.meta, gallery.inputs)):  # the maps stay on the real inputs
        p, order = gallery.probs[i].sort(descending=True)
        maps = []
        for method, attribution in gallery.attributions.items():
            ms = 1000 * attribution.seconds / len(gallery.inputs)
            note = " · cached" if attribution.cached else ""
            maps.append(MapCell(f"{get_method(method).label}<br>{ms:.1f} ms{note}",
                                attribution_map(attribution.values[i:i + 1])[0].numpy(), attribution.signed,
                                method))
        rows.append(SampleRow(x.numpy(), gallery.captions[i],
                              [(classes[j], float(q)) for q, j in zip(p[:top_k], order[:top_k].tolist())],
                              maps, None if gallery.masks is None else gallery.masks[i].numpy()))
    return rows


def image_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from (C, H, W) in [0, 1], grey images repeated over three channels."""
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    return (np.clip(rgb.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def _overlay(values: np.ndarray, signed: bool, sign: str, opacity: float) -> go.Heatmap:
    """The map over its image, scaled to [-1, 1] by its own 99.5th percentile of |value|, on the shared colour axis."""
    shown = apply_sign(values, sign if signed or sign == "absolute" else "all")
    # the 99.5th percentile: one extreme pixel must not wash out the rest of the map
    top = float(np.percentile(np.abs(shown), 99.5)) or float(np.abs(shown).max()) or 1.0
    return go.Heatmap(z=np.clip(shown / top, -1.0, 1.0), customdata=shown, coloraxis="coloraxis",
                      opacity=opacity, hovertemplate="x %{x}, y %{y}: %{customdata:.3g}<extra></extra>")


def _colour_axis(sign: str) -> dict:
    """The one colour axis (and colour bar, beside the first sample's maps) of every map in a grid."""
    bar = dict(thickness=12, lenmode="pixels", len=260, y=1.0, yanchor="top")
    if sign == "all":
        return dict(colorscale=DIVERGING, cmin=-1.0, cmax=1.0, colorbar=dict(
            bar, title=dict(text="attribution,<br>each map<br>to its max", font_size=11),
            tickvals=[-1, 0, 1], ticktext=["−max: against", "0", "+max: for"]))
    return dict(colorscale=SEQUENTIAL[sign], cmin=0.0, cmax=1.0, colorbar=dict(
        bar, title=dict(text=f"{sign} part,<br>each map<br>to its max" if sign != "absolute" else
                        "|attribution|,<br>each map<br>to its max", font_size=11),
        tickvals=[0, 1], ticktext=["0", "max"]))


TITLE_LINE_PX = 14  # one line of an 11 px subplot title
TITLE_CHAR_PX = 5.6  # about an 11 px title character's width


def wrap_title(title: str, cell: int) -> str:
    """A subplot title's lines each broken about a cell (`cell` px) wide, at spaces (Plotly never wraps)."""
    width = max(8, int(cell / TITLE_CHAR_PX))
    return "<br>".join("<br>".join(textwrap.wrap(line, width, break_long_words=False)) or line
                       for line in title.split("<br>"))


def explanation_grid(rows: Sequence[SampleRow], sign: str = "all", opacity: float = 0.6,
                     cell: int = 170, columns: int = 5) -> go.Figure:
    """Each sample's input, top-k probabilities, mask (when known) and one overlay per method.

    A sample's cells wrap onto lines of at most `columns` (never fewer than its fixed cells), so
    nine methods do not shrink every map to a sliver; the maps share one colour bar.
    """
    has_mask = any(row.mask is not None for row in rows)
    n_maps = max((len(row.maps) for row in rows), default=0)
    fixed = 2 + has_mask
    cols = min(max(columns, fixed), fixed + n_maps)
    lines = math.ceil((fixed + n_maps) / cols)

    def place(sample: int, index: int) -> tuple[int, int]:
        """(row, col) of a sample's index-th cell in the figure, 1-based as make_subplots counts."""
        return sample * lines + index // cols + 1, index % cols + 1

    titles = [""] * (len(rows) * lines * cols)
    title_colours: dict[int, str] = {}
    for s, row in enumerate(rows):
        for index, title in enumerate([plot(row.caption), "top-k"] + (["ground truth"] if has_mask else [])
                                      + [m.title for m in row.maps]):
            r, c = place(s, index)
            titles[(r - 1) * cols + c - 1] = title
            if index >= fixed:
                title_colours[(r - 1) * cols + c - 1] = method_colour(row.maps[index - fixed].method)
    # Long titles (a ViT's "CLS attention, last layer") wrap over a cell's width; the gap between rows
    # grows with their lines, so a title sits above its own map, never over the image above it.
    titles = [wrap_title(title, cell) for title in titles]
    title_lines = max((title.count("<br>") + 1 for title in titles if title), default=1)
    grid_rows = len(rows) * lines
    gap = TITLE_LINE_PX * title_lines + 10
    plot_height = cell * grid_rows + gap * (grid_rows - 1)
    fig = make_subplots(rows=grid_rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=gap / plot_height if grid_rows > 1 else 0.0)
    for s, row in enumerate(rows):
        rgb = image_rgb(row.image)
        fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), *place(s, 0))
        names, probs = zip(*((plot(n), p) for n, p in row.top_k)) if row.top_k else ((), ())
        r, c = place(s, 1)
        fig.add_trace(go.Bar(x=list(probs)[::-1], y=list(names)[::-1], orientation="h", marker_color=DARK_GREY,
                             text=[f"{n} {p:.0%}" for n, p in zip(names, probs)][::-1], textposition="outside",
                             cliponaxis=False, hovertemplate="%{y}: %{x:.3f}<extra></extra>",
                             showlegend=False), r, c)
        fig.update_xaxes(range=[0, 1.6], visible=False, row=r, col=c)
        # class names such as "0" stay labels; they are written beside the bars instead of as ticks
        fig.update_yaxes(type="category", showticklabels=False, row=r, col=c)
        if row.mask is not None:
            fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), *place(s, 2))
            fig.add_trace(go.Heatmap(z=row.mask.astype(float), colorscale=MASK,
                                     zmin=0, zmax=1, opacity=0.5, showscale=False, hoverinfo="skip"),
                          *place(s, 2))
        for index, m in enumerate(row.maps, fixed):
            fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), *place(s, index))
            fig.add_trace(_overlay(m.values, m.signed, sign, opacity), *place(s, index))
    for s in range(len(rows)):
        for index in [0] + list(range(2, fixed + n_maps)):
            r, c = place(s, index)
            k = (r - 1) * cols + c  # make_subplots names the k-th subplot's axes x{k}, y{k} (x, y for 1)
            fig.update_xaxes(visible=False, row=r, col=c)
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x" if k == 1 else f"x{k}",
                             row=r, col=c)
    for r in range(1, len(rows) * lines + 1):  # cells past a sample's last map stay blank
        for c in range(1, cols + 1):
            if not titles[(r - 1) * cols + c - 1]:
                fig.update_xaxes(visible=False, row=r, col=c)
                fig.update_yaxes(visible=False, row=r, col=c)
    fig.update_annotations(font_size=11)
    shown = [i for i, title in enumerate(titles) if title]  # make_subplots writes only non-empty titles
    for annotation, i in zip(fig.layout.annotations, shown):
        if i in title_colours:
            annotation.font.color = title_colours[i]
    top = TITLE_LINE_PX * title_lines + 26
    fig.update_layout(height=plot_height + top + 10, width=None, margin=dict(l=10, r=10, t=top, b=10),
                      bargap=0.15, plot_bgcolor="rgba(0,0,0,0)", coloraxis=_colour_axis(sign))
    return fig


def attribution_bars(values_by_method: dict[str, np.ndarray], names: Sequence[str], top: int = 12,
                     height: int = 320) -> go.Figure:
    """One panel per method (keyed by label): the features with the largest |attribution|, red for, blue against."""
    methods = list(values_by_method)
    fig = make_subplots(rows=1, cols=max(len(methods), 1), subplot_titles=methods, horizontal_spacing=0.12)
    for c, method in enumerate(methods, 1):
        values = np.asarray(values_by_method[method], dtype=float)
        order = np.argsort(-np.abs(values), kind="stable")[:top][::-1]
        fig.add_trace(go.Bar(x=values[order], y=[plot(names[i]) for i in order], orientation="h", showlegend=False,
                             marker_color=np.where(values[order] >= 0, FOR, AGAINST),
                             hovertemplate="%{y}: %{x:.4g}<extra></extra>"), 1, c)
    fig.update_yaxes(tickfont_size=10)
    for annotation in fig.layout.annotations:  # the panels' titles: one per method, in its colour
        annotation.font.color = method_colour(annotation.text)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def importance_chart(mean_abs: dict[str, np.ndarray], names: Sequence[str], top: int = 15,
                     height: int = 420) -> go.Figure:
    """Global importance: mean |attribution| per feature, one bar group per method, scaled to each method's sum."""
    first = next(iter(mean_abs.values()))
    order = np.argsort(-np.asarray(first), kind="stable")[:top][::-1]
    fig = go.Figure()
    for method, values in mean_abs.items():
        values = np.asarray(values, dtype=float)
        share = values / (values.sum() or 1.0)
        fig.add_trace(go.Bar(x=share[order], y=[plot(names[j]) for j in order], orientation="h", name=method,
                             marker_color=method_colour(method),
                             hovertemplate=f"{method}<br>%{{y}}: %{{x:.1%}} of the total<extra></extra>"))
    fig.update_layout(barmode="group", height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="share of mean |attribution|", xaxis_tickformat=".0%",
                      legend=dict(orientation="h", y=1.08))
    return fig


def beeswarm(attributions: np.ndarray, features: np.ndarray, names: Sequence[str], top: int = 12,
             height: int = 460, seed: int = 0) -> go.Figure:
    """Each dot a sample: attribution (x) of a feature (row), coloured by the feature's value."""
    order = np.argsort(-np.abs(attributions).mean(axis=0), kind="stable")[:top][::-1]
    rng = np.random.default_rng(seed)
    xs, ys, colours, texts = [], [], [], []
    for row, j in enumerate(order):
        value = features[:, j]
        low, high = np.percentile(value, [5, 95])
        xs.append(attributions[:, j])
        ys.append(row + rng.uniform(-0.3, 0.3, len(value)))
        colours.append(np.clip((value - low) / ((high - low) or 1.0), 0, 1))
        texts += [f"{plot(names[j])} = {v:.3g}" for v in value]
    fig = go.Figure(go.Scattergl(
        x=np.concatenate(xs), y=np.concatenate(ys), mode="markers", text=texts,
        marker=dict(size=5, color=np.concatenate(colours), colorscale=FEATURE_VALUE, opacity=0.7,
                    colorbar=dict(title="feature value", tickvals=[0, 1], ticktext=["low", "high"])),
        hovertemplate="%{text}<br>attribution %{x:.4g}<extra></extra>"))
    fig.add_vline(x=0, line_color=GREY, line_width=1)
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=[plot(names[j]) for j in order])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="attribution")
    return fig


def faithfulness_curves(fractions: np.ndarray, deletion: dict[str, np.ndarray],
                        insertion: dict[str, np.ndarray], height: int = 340) -> go.Figure:
    """Mean target probability as features are removed (deletion) or added back (insertion)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Deletion: lower is better", "Insertion: higher is better"),
                        horizontal_spacing=0.08)
    for method in deletion:
        colour = method_colour(method)
        dash = "dot" if method.startswith("Random") else "solid"
        for c, curves in ((1, deletion), (2, insertion)):
            mean = np.asarray(curves[method]).mean(axis=0)
            auc = float(np.trapezoid(mean, fractions))
            fig.add_trace(go.Scatter(x=fractions, y=mean, mode="lines", name=method, legendgroup=method,
                                     showlegend=c == 1, line=dict(color=colour, dash=dash, width=2),
                                     hovertemplate=f"{method} (area {auc:.3f})<br>%{{x:.0%}}: "
                                                   "%{y:.3f}<extra></extra>"), 1, c)
    fig.update_xaxes(title_text="share of features (attribution order)", tickformat=".0%")
    fig.update_yaxes(title_text="target probability", range=[0, 1.02], col=1)
    fig.update_yaxes(range=[0, 1.02], col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig
