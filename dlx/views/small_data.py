"""Runs too small to learn: the Launch form's warning before a tiny set is trained for a few steps, and the
note on a finished run whose test accuracy is at chance level. Plain text for the pages; no Streamlit here."""
from __future__ import annotations

import math
from collections.abc import Sequence

from dlx.config import RunConfig
from dlx.data import DATASETS
from dlx.store import RunInfo

MIN_STEPS = 60  # optimisation steps below which a model from scratch rarely beats guessing
MIN_PER_CLASS = 10  # training samples per class below which even a long run learns little
CHANCE_MARGIN = 0.05  # test accuracy within this of the best guess counts as chance level


def train_rows(config: RunConfig) -> int | None:
    """About how many training samples a config's data set gives (None: the registry cannot say)."""
    entry = DATASETS.get(config.dataset)
    if entry is None or entry.rows is None:
        return None
    return max(1, round(entry.rows * (1 - config.val_fraction - config.test_fraction)))


def small_set_warning(configs: Sequence[RunConfig]) -> str | None:
    """What the Launch form says when a run would take too few steps (or have too few samples per class) to
    learn: the counts and what to change; None when every run looks large enough."""
    for config in configs:
        rows = train_rows(config)
        entry = DATASETS.get(config.dataset)
        if rows is None or entry is None:
            continue
        per_epoch = math.ceil(rows / config.batch_size)
        steps = per_epoch * config.epochs
        per_class = rows / max(entry.classes or 1, 1)
        if steps >= MIN_STEPS and per_class >= MIN_PER_CLASS:
            continue
        text = (f"Small for these settings: about {rows:,} training samples ({per_class:.0f} per class), "
                f"{steps:,} optimisation steps in all (batch size {config.batch_size}, {config.epochs} epochs). "
                "Expect accuracy near chance.")
        if steps < MIN_STEPS:
            epochs = math.ceil(MIN_STEPS / per_epoch)
            text += (f" Train for about {epochs} epochs" + (f" or with a batch size of {max(1, rows // 8)}"
                                                             if config.batch_size > rows // 8 else "") + ".")
        if per_class < MIN_PER_CLASS:
            text += f" More data helps most: {MIN_PER_CLASS} or more samples per class."
        return text
    return None


def chance_note(run: RunInfo) -> str | None:
    """What a finished run's page says when its test accuracy is no better than guessing (the larger of one
    over the classes and the largest class's share of the test split), and what to try; else None."""
    accuracy = run.summary.get("test_acc")
    matrix = run.summary.get("confusion_matrix")
    classes = len(run.summary.get("classes") or ()) or (len(matrix) if matrix else 0)
    if run.status != "succeeded" or accuracy is None or classes < 2:
        return None
    guess = 1 / classes
    if matrix:
        totals = [sum(row) for row in matrix]
        guess = max(guess, max(totals) / (sum(totals) or 1))
    if accuracy > guess + CHANCE_MARGIN:
        return None
    size = run.summary.get("train_size")
    steps = run.summary.get("total_steps")
    facts = ", ".join(part for part in (f"{size:,} training samples" if size else "",
                                        f"{steps:,} steps" if steps else "") if part)
    return (f"Test accuracy {accuracy:.1%} is at chance level for {classes} classes (always guessing the most "
            f"common class scores {guess:.1%}): the model has not learned yet"
            + (f" ({facts})" if facts else "") + ". Train for more epochs or with a smaller batch size, "
            "or bring more data.")
