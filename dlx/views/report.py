"""A run as one self-contained HTML file (`dlx report`, the pages' "Download report"): its config, curves,
confusion matrix, the explanations its cache holds and their scores, drawn by the pages' chart functions.

Plotly's JavaScript is inlined once and every figure is a div it draws; a Content-Security-Policy lets
nothing leave the file (no CDN, font or remote image); every string a user wrote is escaped.
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from dlx.errors import DlxError
from dlx.store import RunInfo, Store
from dlx.views import progress
from dlx.views.charts import curves as curve_charts
from dlx.views.text import plot, shorten

if TYPE_CHECKING:
    from dlx.explain.models_cache import LoadedRun
    from dlx.store.explanations import Stored

Entry = tuple[str, str, "Stored"]  # (cache key, method, (meta, tensors)) as store.explanations.for_run gives
# Nothing is fetched: scripts and styles only inline, images only as data: URIs (Plotly draws its
# image traces through them); 'unsafe-eval' is WebGL traces' (Plotly's regl) shader compiler.
POLICY = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
          "img-src data: blob:; font-src data:")
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#262730}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;"
         "vertical-align:top}pre{background:#f6f7f9;padding:1em;overflow:auto;max-height:40em}"
         ".note{color:#6b6f7b}")
CHART_CONFIG = {"displayModeBar": False, "responsive": True}
INFLUENCE_TOP = 5  # proponents and opponents per sample; four times as many in the self-influence review
MATCH_LIMIT = 20_000  # test samples (or sentences) searched for a cached map's input
MAX_METRIC_CHARTS = 24  # metric groups drawn beyond the curves; the rest are named
SENTENCE_HEADS = 3  # heads drawn in a sentence's head view


@dataclass
class Report:
    """The file being written: HTML parts in order; figures become divs the one inline Plotly draws."""

    title: str
    parts: list[str] = field(default_factory=list)
    figures: int = 0

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, note: bool = False) -> None:
        self.parts.append(f'<p{" class=note" if note else ""}>{html.escape(text)}</p>')

    def table(self, rows: list[dict[str, Any]]) -> None:
        """Rows of one shape as a table; numbers to 4 significant digits, everything escaped."""
        if not rows:
            return
        columns = list(rows[0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                       for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, fig: go.Figure) -> None:
        height = fig.layout.height or 450
        self.parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False, config=CHART_CONFIG,
                                      default_width="100%", default_height=f"{height}px"))
        self.figures += 1

    def trusted(self, markup: str) -> None:
        """HTML built by a chart function that escapes what it shows (coloured_sentence)."""
        self.parts.append(markup)

    def html(self) -> str:
        return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
                f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style>"
                f"<script>{get_plotlyjs()}</script></head><body>{''.join(self.parts)}</body></html>")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return shorten("" if value is None else value)


def report_html(store: Store, run_id: int) -> str:
    """The run's report as one HTML document; a run that does not exist is a DlxError naming `run`."""
    run = store.get_run(run_id)
    if run is None:
        raise DlxError(f"run: there is no run #{run_id}; `dlx runs` lists them", field="run")
    report = Report(f"dlx report: {run.label}")
    for section in SECTIONS:
        section(report, store, run)
    return report.html()


def _overview(report: Report, store: Store, run: RunInfo) -> None:
    report.heading(f"Run {run.label}", 1)
    facts = {"status": run.status, "experiment": run.experiment, "sweep": run.sweep, "data set": run.dataset,
             "model": run.model, "device": run.device, "duration": progress.format_duration(run.duration_s),
             "created": run.created_at, "started": run.started_at, "ended": run.ended_at,
             "note": run.note or None, "error": run.error}
    report.table([{"": name, "value": value} for name, value in facts.items() if value is not None])
    numbers = {k: v for k, v in run.summary.items() if isinstance(v, (int, float, str, bool))}
    if numbers or run.metrics:
        report.heading("Summary")
        report.table([{"name": k, "value": v} for k, v in {**numbers, **run.metrics}.items()])


def _config(report: Report, store: Store, run: RunInfo) -> None:
    report.heading("Config and params")
    report.parts.append(f"<pre>{html.escape(json.dumps(_short(run.config), indent=2, default=str))}</pre>")
    if run.params:
        report.table([{"param": k, "value": v} for k, v in run.params.items()])
    if run.user_tags:
        report.table([{"tag": k, "value": v} for k, v in run.user_tags.items()])


def _short(value: Any) -> Any:
    """The config with every long text cut (a 10 MB param must not make a 10 MB report)."""
    if isinstance(value, dict):
        return {shorten(k): _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value[:100]] + ([f"… {len(value) - 100:,} more"] if len(value) > 100 else [])
    return shorten(value) if isinstance(value, str) else value


def _curves(report: Report, store: Store, run: RunInfo) -> None:
    keys = sorted(store.latest_metrics(run.id))
    if not keys:
        return
    report.heading("Metrics")
    drawn = [k for k in curve_charts.CURVE_KEYS if k in keys]
    if drawn:
        report.figure(curve_charts.curves({k: store.metric_history(run.id, k) for k in drawn},
                                          run.summary.get("steps_per_epoch"), run.summary.get("epochs")))
    groups = curve_charts.metric_groups(keys)
    if groups:
        shown = dict(list(groups.items())[:MAX_METRIC_CHARTS])
        histories = {k: store.metric_history(run.id, k) for keys_ in shown.values() for k in keys_}
        report.figure(curve_charts.metrics_figure(shown, histories))
        if len(groups) > len(shown):
            report.text(f"{len(groups) - len(shown):,} more metric charts not drawn: "
                        + shorten(", ".join(list(groups)[len(shown):]), 400), note=True)


def _confusion(report: Report, store: Store, run: RunInfo) -> None:
    matrix = run.summary.get("confusion_matrix")
    if matrix:
        report.heading("Confusion matrix")
        report.figure(curve_charts.confusion_matrix(matrix, run.summary.get("classes", [])))
        report.text("On the test split; colour is each true class's share, numbers are counts.", note=True)


def _explanations(report: Report, store: Store, run: RunInfo) -> None:
    """Every entry the run's explanation cache holds: maps (drawn on their inputs), then stored results."""
    entries = store.explanations.for_run(run.id)
    report.heading("Explanations")
    if not entries:
        report.text("No explanations are stored for this run: open it on the Explain page to compute some.",
                    note=True)
        return
    results = [e for e in entries if e[1] in RESULTS]
    maps = [e for e in entries if e[1] not in RESULTS]
    if maps:
        _maps(report, store, run, maps)
    for _, method, stored in results:
        RESULTS[method](report, store, run, stored)
    unknown = sorted({method for _, method, _ in maps} - _drawable_methods())
    if unknown:
        report.text(f"Stored results this report does not draw: {', '.join(unknown)}.", note=True)


def _drawable_methods() -> set[str]:
    from dlx.explain import METHODS  # torch and captum: only where a report draws maps

    return set(METHODS)


def _maps(report: Report, store: Store, run: RunInfo, entries: list[Entry]) -> None:
    """Maps grouped by the checkpoint they were computed on, each drawn like the Explain page draws it."""
    from dlx.explain.models_cache import (
        get_loaded_run,  # torch: only where a report draws maps
    )

    by_checkpoint: dict[str, list[Entry]] = {}
    for entry in entries:
        by_checkpoint.setdefault(entry[2][0].get("checkpoint", "best"), []).append(entry)
    for checkpoint, group in by_checkpoint.items():
        try:
            loaded = get_loaded_run(store, run.id, checkpoint, "cpu")
        except DlxError as err:
            report.text(f"{len(group)} stored maps are not drawn: {err}", note=True)
            continue
        if loaded.meta.kind == "text":
            _sentences(report, loaded, group)
        else:
            _samples(report, loaded, group)


def _samples(report: Report, loaded: LoadedRun, entries: list[Entry]) -> None:
    """Image and table maps: each matched to the test sample it explains, drawn as the Explain page's grid."""
    from dlx.explain import METHODS, methods_for
    from dlx.explain.cache import explanation_key
    from dlx.explain.image.gallery import sample_captions
    from dlx.explain.image.localisation import attribution_map
    from dlx.explain.image.uploads import for_display
    from dlx.explain.samples import sample_inputs
    from dlx.views.charts import explain as charts

    meta = loaded.meta
    entries = [e for e in entries if e[1] in methods_for(meta.kind)]
    test = loaded.bundle.test
    inputs = sample_inputs(test, list(range(min(len(test), MATCH_LIMIT))))
    found: dict[int, list[Entry]] = {}
    unmatched: list[Entry] = []
    for entry in entries:
        key, method, (info, _) = entry
        index = next((i for i, x in enumerate(inputs) if explanation_key(
            loaded, x, method, info.get("params") or {}, info.get("baseline", "zeros"), info["target"]) == key), None)
        if index is None:
            unmatched.append(entry)
        else:
            found.setdefault(index, []).append(entry)
    indices = sorted(found)
    report.heading(f"Attribution maps ({len(entries)} stored, on {len(indices)} test samples)", 3)
    if indices:
        chosen = inputs[indices]
        probs = loaded.predict(chosen)
        captions = sample_captions(indices, test.y[indices], probs, meta.classes)
        shown = for_display(meta, chosen)
        rows = []
        for k, i in enumerate(indices):
            p, order = probs[k].sort(descending=True)
            cells = [charts.MapCell(f"{METHODS[m].label}<br>for {plot(meta.classes[info['target']])}",
                                    attribution_map(tensors["values"][None])[0].numpy(),
                                    bool(info.get("signed", True)), m) for _, m, (info, tensors) in found[i]]
            rows.append(charts.SampleRow(shown[k].numpy(), captions[k],
                                         [(meta.classes[j], float(q)) for q, j in zip(p[:3], order[:3].tolist())],
                                         cells, test.extras["mask"][i].numpy() if "mask" in test.extras else None))
        if meta.kind == "image":
            report.figure(charts.explanation_grid(rows))
        else:
            for row in rows:
                report.text(f"{row.caption}: " + ", ".join(f"{n} {q:.0%}" for n, q in row.top_k))
                report.figure(charts.attribution_bars({m.title: m.values for m in row.maps}, meta.feature_names))
    if unmatched:
        report.text(f"{len(unmatched)} stored maps explain inputs that are not in the test split (uploads); "
                    "their inputs are not stored, so only the maps are drawn.", note=True)
        if meta.kind == "image":
            rows = [charts.SampleRow(np.full((1, *t["values"].shape[-2:]), 0.5),
                                     "an upload", [], [charts.MapCell(METHODS[m].label,
                                                                      attribution_map(t["values"][None])[0].numpy(),
                                                                      bool(info.get("signed", True)), m)])
                    for _, m, (info, t) in unmatched]
            report.figure(charts.explanation_grid(rows))


def _sentences(report: Report, loaded: LoadedRun, entries: list[Entry]) -> None:
    """Token attributions matched to the test sentence they explain, each sentence with its attention views."""
    import torch  # only where a report draws maps

    from dlx.explain import METHODS, cache, get_way, methods_for
    from dlx.explain.attention.rollout import relevance, rollout
    from dlx.explain.attention.text import attention_and_gradients, token_scores
    from dlx.explain.text.tokens import encode, pooling_of
    from dlx.views.charts import attention as charts

    meta, model = loaded.meta, loaded.model
    entries = [e for e in entries if e[1] in methods_for("text")]
    wanted = {entry[0]: entry for entry in entries}
    methods = sorted({method for _, method, _ in entries})
    defaults = {m: get_way(m, "text").resolve({}) for m in methods}
    test = loaded.bundle.test
    found: list[tuple[int, Any, list[Entry]]] = []
    for index, text in enumerate(test.texts[:MATCH_LIMIT]):
        if not wanted:
            break
        e = encode(model.tokenizer, text, getattr(model, "max_length", 128))
        ids = e.input_ids[0].tolist()
        hits = [wanted.pop(key) for m in methods for t in range(meta.num_classes)
                for key in [cache.digest({"text": e.text, "ids": ids, "method": m, "params": defaults[m],
                                          "target": t, "checkpoint_id": loaded.checkpoint_id})] if key in wanted]
        if hits:
            found.append((index, e, hits))
    report.heading(f"Token attributions ({len(entries)} stored, on {len(found)} test sentences)", 3)
    pooling = pooling_of(model)
    for index, e, hits in found:
        with loaded.lock:
            maps, grads, logits = attention_and_gradients(model, e)
        probs = torch.softmax(logits, -1)
        predicted = int(probs.argmax())
        report.heading(f"Test sentence #{index}: true {meta.classes[int(test.y[index])]}, "
                       f"predicted {meta.classes[predicted]} ({float(probs[predicted]):.0%})", 4)
        keep = [i for i, s in enumerate(e.special) if not s]
        for _, method, (info, tensors) in hits:
            report.text(f"{METHODS[method].label}")
            report.trusted(charts.coloured_sentence([e.tokens[i] for i in keep], tensors["values"][keep].numpy(),
                                                    bool(info.get("signed", True))))
        layers, heads = maps.shape[:2]
        report.figure(charts.model_view(maps.numpy(), e.tokens))
        report.figure(charts.head_view(maps.numpy(), e.tokens, layers - 1, list(range(min(heads, SENTENCE_HEADS)))))
        flows = {"rollout": token_scores(rollout(maps), e, pooling).numpy(),
                 "relevance": token_scores(relevance(maps, grads), e, pooling).numpy()}
        report.figure(charts.token_bars(flows, e.tokens))
    if wanted:
        report.text(f"{len(wanted)} stored token attributions explain sentences typed on the page (not in the "
                    "test split) or other parameters; their sentences are not stored, so they are not drawn.",
                    note=True)


# -- stored results, by the cache's method name ------------------------------------------------------
# A result kind adds its renderer here, under the method name its job stores it as.
Renderer = Callable[[Report, Store, RunInfo, "Stored"], None]
RESULTS: dict[str, Renderer] = {}


def result(*methods: str) -> Callable[[Renderer], Renderer]:
    def add(renderer: Renderer) -> Renderer:
        for method in methods:
            RESULTS[method] = renderer
        return renderer
    return add


@result("scores", "job:faithfulness")
def _faithfulness(report: Report, store: Store, run: RunInfo, stored: Stored) -> None:
    from dlx.explain.scoring import (  # torch: only where a report draws stored results
        Scores,
        label,
    )
    from dlx.views.charts.explain import faithfulness_curves

    meta, tensors = stored
    scores = Scores.from_tensors(tensors)
    report.heading(f"Faithfulness on {meta.get('n', '?')} samples", 3)
    report.table(_ranked(scores.table()))
    report.figure(faithfulness_curves(scores.fractions, {label(m): v for m, v in scores.deletion.items()},
                                      {label(m): v for m, v in scores.insertion.items()}))


@result("job:global_importance")
def _importance(report: Report, store: Store, run: RunInfo, stored: Stored) -> None:
    from dlx.explain import METHODS  # torch: only where a report draws stored results
    from dlx.explain.image.importance import GlobalImportance
    from dlx.views.charts.explain import importance_chart

    meta, tensors = stored
    importance = GlobalImportance.from_tensors(tensors)
    names = meta.get("task", {}).get("feature_names") or [str(i) for i in range(importance.features.shape[-1])]
    report.heading(f"Global importance on {meta.get('n', '?')} samples", 3)
    report.figure(importance_chart({METHODS[m].label if m in METHODS else m: importance.mean_abs(m)
                                    for m in importance.attributions}, names))


@result("job:explain_text")
def _text_faithfulness(report: Report, store: Store, run: RunInfo, stored: Stored) -> None:
    from dlx.explain.scoring import TextScores  # torch: only where a report draws stored results
    from dlx.views.charts.explain import faithfulness_curves

    meta, tensors = stored
    scores = TextScores.from_tensors(tensors)
    report.heading(f"Faithfulness by word on {meta.get('n', '?')} test sentences", 3)
    report.table(_ranked(scores.table()))
    grid, deletion = scores.grid_curves("deletion")
    _, insertion = scores.grid_curves("insertion")
    report.figure(faithfulness_curves(grid, deletion, insertion))


@result("job:sanity")  # dlx.explain.jobs.SANITY_RESULT
def _sanity(report: Report, store: Store, run: RunInfo, stored: Stored) -> None:
    from dlx.views.charts.sanity import randomisation_curves

    result = stored[0]["result"]
    report.heading(f"Sanity checks (Adebayo et al. 2018) on {result.get('samples', '?')} test samples", 3)
    report.text(f"Layers randomised from {result['layers'][-1]} down to {result['layers'][0]}; "
                f"{result.get('interval', '')}. A method fails when the Spearman correlation of its absolute maps "
                f"after randomising every layer is above {result.get('threshold')}.")
    report.table([{"method": entry.get("label", method),
                   "spearman |map|": _number(entry.get("spearman")),
                   "95% interval": "[{:.3f}, {:.3f}]".format(*entry["spearman_ci"]) if entry.get("spearman_ci")
                   else "",
                   "spearman signed": _number(entry.get("spearman_signed")),
                   "SSIM": _number(entry.get("ssim")), "HOG": _number(entry.get("hog")),
                   "verdict": "passed" if entry.get("passed") else "failed"}
                  for method, entry in result["methods"].items()])
    report.figure(randomisation_curves(result))
    report.figure(randomisation_curves(result, steps="independent"))


@result("job:explain_over_training")  # dlx.explain.over_training.KIND's results
def _over_training(report: Report, store: Store, run: RunInfo, stored: Stored) -> None:
    from dlx.explain import get_way
    from dlx.explain.models_cache import get_loaded_run  # torch: only where a report draws stored results
    from dlx.explain.over_training import OverTraining
    from dlx.explain.scoring import label
    from dlx.views.charts import over_training as charts

    result = OverTraining.from_stored(*stored)
    try:
        classes: Sequence[str] = get_loaded_run(store, run.id, "best", "cpu").meta.classes
    except DlxError:  # the best checkpoint is gone: classes by number
        classes = [str(c) for c in range(result.probs.shape[-1])]
    report.heading(f"Over training: {len(result.indices)} samples under {len(result.names)} kept checkpoints", 3)
    report.figure(charts.score_curves(result))
    for method in result.maps:
        report.text(label(method))
        if result.tokens is None:
            report.figure(charts.map_rows(result, method, classes))
        else:
            way = get_way(method, "text")
            for sample in range(len(result.indices)):
                report.trusted(charts.sentence_rows(result, method, sample, classes, way.signed(way.resolve({}))))


@result("job:influence")  # dlx.explain.influence.KIND's results: the self-influence, and a sample's
def _influence(report: Report, store: Store, run: RunInfo, stored: Stored) -> None:
    from dlx.explain.influence import SHARES, noise_recall  # torch: only where a report draws stored results
    from dlx.training.label_noise import recorded_label_noise

    meta, tensors = stored
    scores = tensors["scores"].numpy()
    layers = ", ".join(meta.get("layers") or [])
    if "index" in meta:  # one sample's proponents and opponents
        sample = "an uploaded image" if meta["split"] == "upload" else f"{meta['split']} sample #{meta['index']}"
        report.heading(f"Training examples that moved {sample} (TracIn, {layers})", 3)
        order = scores.argsort(kind="stable")
        report.table([{"proponent": int(p), "score": _number(float(scores[p])),
                       "opponent": int(o), "score ": _number(float(scores[o]))}
                      for p, o in zip(order[::-1][:INFLUENCE_TOP], order[:INFLUENCE_TOP])])
        return
    ranking = (-scores).argsort(kind="stable")
    noise = recorded_label_noise(store, run.id)
    flipped = set() if noise is None else {int(i) for i in noise.indices}
    labels = tensors["labels"].tolist()
    report.heading(f"Self-influence of the training set (TracIn over {len(meta['names'])} checkpoints, {layers})", 3)
    report.text("The training examples that most influenced their own loss: likely mislabelled or atypical.")
    report.table([{"rank": rank + 1, "training example": int(i), "label": labels[i],
                   "self-influence": _number(float(scores[i])), "planted noise": "flipped" if i in flipped else ""}
                  for rank, i in enumerate(ranking[:INFLUENCE_TOP * 4])])
    if flipped:
        scored = noise_recall(ranking.tolist(), sorted(flipped))
        report.table([{"ranking": name, **{f"recall in top {s:.0%}": _number(part["recall"][s]) for s in SHARES},
                       "AUPRC": _number(part["auprc"])}
                      for name, part in (("self-influence", scored), ("random (expected)", scored["random"]))])


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.3f}"


def _ranked(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores' rows with their rank first, as the pages' tables show them."""
    return [{"rank": row.get("rank"), **{k: v for k, v in row.items() if k != "rank"}} for row in rows]


Section = Callable[[Report, Store, RunInfo], None]
SECTIONS: list[Section] = [_overview, _config, _curves, _confusion, _explanations]
