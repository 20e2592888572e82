"""How far a run is, how fast it goes and when it ends; the tail of its log. No Streamlit here."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlx import settings
from dlx.store import History, RunInfo, Store


@dataclass
class Progress:
    """A run's position in its training; `fraction` is None until the run knows its total steps."""

    step: int
    total_steps: int | None
    epoch: int  # epochs finished
    epochs: int | None
    samples_per_s: float | None
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    def describe(self) -> str:
        """'Epoch 2 of 3 · step 90 of 135 · 7,512 samples/s · about 4 s left'."""
        if self.total_steps is None:
            return "Starting: loading the data and building the model"
        parts = []
        if self.epochs:
            parts.append(f"Epoch {min(self.epoch + 1, self.epochs)} of {self.epochs}")
        if self.step:
            parts.append(f"step {self.step:,} of {self.total_steps:,}")
        else:
            parts.append(f"training the first steps of {self.total_steps:,}")
        if self.samples_per_s:
            parts.append(f"{self.samples_per_s:,.0f} samples/s")
        if self.eta_s is not None and self.step < self.total_steps:
            parts.append(f"about {format_duration(self.eta_s)} left")
        elif self.step >= self.total_steps:
            parts.append("testing the best checkpoint")
        return " · ".join(parts)


def estimate(run: RunInfo, losses: History, epochs_done: History, samples_per_s: History,
             now: float | None = None) -> Progress:
    """Progress from the run's summary (total steps, known once training starts) and its metrics.

    The rate comes from the step losses' timestamps, so time spent evaluating between epochs
    counts; the first window is skipped when there is more, since it includes warm-up.
    """
    now = time.time() if now is None else now
    total = run.summary.get("total_steps")
    epochs = run.summary.get("epochs") or run.config.get("epochs")
    step = int(losses.steps[-1]) if len(losses) else 0
    epoch = int(epochs_done.values[-1]) if len(epochs_done) else 0
    rate_samples = throughput(samples_per_s)
    eta = None
    if total and step:
        steps_per_s = _steps_per_second(losses)
        if steps_per_s is None and rate_samples:
            steps_per_s = rate_samples / max(1, int(run.config.get("batch_size", 1)))
        if steps_per_s:
            since_last = max(0.0, now - float(losses.times[-1]))
            eta = max(0.0, (total - step) / steps_per_s - since_last)
    return Progress(step, int(total) if total else None, epoch, int(epochs) if epochs else None,
                    rate_samples, eta)


def throughput(samples_per_s: History, windows: int = 5) -> float | None:
    """Training samples/s now: the median of the last logging windows' rates, each weighted by the
    steps it covers. A window is 0.5 s of training, or shorter (the end's remainder); a plain median
    let short slow ones (a cold start on a busy machine: three in a 3 s run) outvote the long fast
    one, and one that spans an evaluation or a warm-up would drag a mean."""
    if not len(samples_per_s):
        return None
    spans = np.diff(samples_per_s.steps.astype(np.float64), prepend=0.0)[-windows:]
    rates = samples_per_s.values[-windows:]
    if not (spans > 0).all():  # steps logged out of order or repeated: the windows are not spans
        return float(np.median(rates))
    order = np.argsort(rates)
    weight = np.cumsum(spans[order])
    return float(rates[order][np.searchsorted(weight, weight[-1] / 2)])


def _steps_per_second(losses: History) -> float | None:
    times = losses.times
    if len(times) < 2:
        return None
    # Points of one flush window share a time; start from the second window when there is one.
    later = times > times[0]
    start = int(later.argmax()) if later.any() and later.sum() > 1 else 0
    span = float(times[-1] - times[start])
    if span <= 0:
        return None
    return float(losses.steps[-1] - losses.steps[start]) / span


def format_duration(seconds: float | None) -> str:
    """'0.8 s', '42 s', '3 min 12 s', '2 h 5 min'."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def tail(path: Path, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """The last lines of a (possibly growing, possibly huge) log file; empty when it is missing."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.partition("\n")[2]  # drop the partial first line
    return "\n".join(text.splitlines()[-lines:])


def log_path(store: Store, run_id: int) -> Path | None:
    """The newest log file of a run's jobs, or None before any job started."""

    logs = store.artifacts(run_id, "log")
    return settings.stored_path(logs[-1].path) if logs else None


def fraction_done(run: RunInfo, last_step: int | None) -> float | None:
    """For tables: finished runs are done, running ones as far as their last logged step."""
    if run.status == "succeeded":
        return 1.0
    total = run.summary.get("total_steps")
    if run.status != "running" or not total or last_step is None:
        return None
    return min(1.0, last_step / total)
