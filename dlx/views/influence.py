"""The Influence tab's logic, Streamlit-free: training examples as pictures, texts or table rows with their
labels and scores, and the planted-noise table (recall in the top of the self-influence ranking, AUPRC)."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dlx.data import DataBundle
from dlx.data.browse import displayable
from dlx.explain.influence import SHARES


@dataclass
class Examples:
    """Training examples to show: captions always; images (image sets) or a table (tables and text)."""

    captions: list[str]
    images: list[np.ndarray] | None
    table: pd.DataFrame


def training_examples(bundle: DataBundle, chosen: list[tuple[int, float]], labels: np.ndarray,
                      flipped: Collection[int] = ()) -> Examples:
    """(index, score) pairs of the training split as the page shows them; `labels` are those the run trained on."""
    classes, split = bundle.meta.classes, bundle.train
    rows: dict[str, list[Any]] = {"training example": [], "label": [], "score": [], "planted noise": []}
    flipped = set(flipped)
    captions = []
    for i, score in chosen:
        label = classes[int(labels[i])]
        noise = f"flipped from {classes[int(split.y[i])]}" if i in flipped else ""
        rows["training example"].append(i)
        rows["label"].append(label)
        rows["score"].append(score)
        rows["planted noise"].append(noise)
        captions.append(f"#{i} · {label} · {score:.3g}" + (" · flipped" if noise else ""))
    table = pd.DataFrame(rows)
    if not flipped:
        table = table.drop(columns="planted noise")
    kind = bundle.meta.kind
    if kind == "text":
        table.insert(1, "text", [split.texts[i] for i, _ in chosen])
    elif kind == "table":
        names = list(bundle.meta.feature_names) or [f"feature {j}" for j in range(split.x.shape[1])]
        values = split.x[[i for i, _ in chosen]].double().numpy() if chosen else np.zeros((0, len(names)))
        table = pd.concat([table, pd.DataFrame(values, columns=names)], axis=1)
    images = [displayable(split.x[i]) for i, _ in chosen] if kind == "image" else None
    return Examples(captions, images, table)


def noise_table(scored: dict[str, Any]) -> pd.DataFrame:
    """Recall of the flipped labels in the top 5/10/20% and AUPRC: self-influence against a random ranking."""
    columns = [f"recall in top {share:.0%}" for share in SHARES] + ["AUPRC"]
    rows = [[scored["recall"][s] for s in SHARES] + [scored["auprc"]],
            [scored["random"]["recall"][s] for s in SHARES] + [scored["random"]["auprc"]]]
    return pd.DataFrame(rows, columns=columns, index=["self-influence", "random (expected)"])
