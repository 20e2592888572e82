"""The nearest counterfactual of a table row: the smallest change of one feature that flips the prediction.

The search (`WAY`, shown with every result): each feature alone is moved from the row's value in steps
of `step` training standard deviations, both ways, as far as the training data's range allows; every
candidate row is predicted in one batch. The change with the fewest standard deviations that makes the
model predict another class (or the `wanted` one) wins, and is then refined by bisection between the
last step that did not flip and the first that did. Minimal in that sense: no single-feature change of
fewer standard deviations on the grid flips the prediction; changes of two features at once are not tried.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlx.errors import DlxError
from dlx.explain.models_cache import LoadedRun
from dlx.explain.whatif import feature_names, to_own_units

WAY = ("a one-feature line search (not Captum's MinParamPerturbation): each feature alone moved in steps of "
       "{step} training standard deviations, both ways, within the training data's range; the smallest "
       "change that flips the prediction, refined by bisection")
STEP = 0.02  # training standard deviations per step of the search
REFINE = 12  # bisection halvings of the last step: 0.02 std / 4096


@dataclass
class Counterfactual:
    """The one-feature change that flips the prediction, in the data's own units and in standard deviations."""

    feature: str
    index: int
    old: float  # own units
    new: float  # own units
    change_std: float  # |new - old| in training standard deviations
    row: Tensor  # the edited row, in model units
    probs: Tensor  # the model's probabilities on it
    way: str

    @property
    def predicted(self) -> int:
        return int(self.probs.argmax())


def nearest_counterfactual(loaded: LoadedRun, row: Tensor, step: float = STEP,
                           wanted: int | None = None) -> Counterfactual | None:
    """The smallest one-feature change of `row` (model units) that flips the model's prediction (to
    `wanted` where given), found as `WAY` says; None when no single feature within range flips it."""
    bundle = loaded.bundle
    if bundle.meta.kind != "table":
        raise DlxError(f"run: counterfactuals are for table runs; run #{loaded.run_id} is {bundle.meta.kind}",
                       field="run")
    if not step > 0:
        raise DlxError(f"step: {step} must be a positive number of standard deviations", field="step")
    original = int(loaded.predict(row[None])[0].argmax())
    if wanted is not None and not (0 <= wanted < loaded.meta.num_classes and wanted != original):
        raise DlxError(f"wanted: choose a class other than the predicted one ({original}), "
                       f"0 to {loaded.meta.num_classes - 1}", field="wanted")
    train = bundle.train.x.float()
    sd = train.std(0).clamp(min=1e-8)
    low, high = train.min(0).values, train.max(0).values
    best: tuple[float, int, float, float] | None = None  # (|k| * step, feature, flipping value, last not flipping)
    for direction in (1.0, -1.0):
        candidates, owners, ks = _grid(row.float(), sd, low, high, step, direction)
        if not len(candidates):
            continue
        predicted = loaded.predict(candidates).argmax(1)
        flips = predicted != original if wanted is None else predicted == wanted
        for feature in owners[flips].unique().tolist():
            first = int(torch.nonzero(flips & (owners == feature))[0])
            size = float(ks[first]) * step
            if best is None or size < best[0] - 1e-12:
                value = float(candidates[first, feature])
                best = (size, feature, value, value - direction * step * float(sd[feature]))
    if best is None:
        return None
    _, feature, flipping, before = best
    flipping = _bisect(loaded, row.float(), feature, before, flipping, original, wanted)
    edited = row.float().clone()
    edited[feature] = flipping
    probs = loaded.predict(edited[None])[0]
    old, new = (to_own_units(bundle, r[None])[0, feature] for r in (row, edited))
    return Counterfactual(feature_names(bundle)[feature], feature, float(old), float(new),
                          abs(flipping - float(row[feature])) / float(sd[feature]), edited, probs,
                          WAY.format(step=step))


def _grid(row: Tensor, sd: Tensor, low: Tensor, high: Tensor, step: float,
          direction: float) -> tuple[Tensor, Tensor, Tensor]:
    """Every one-feature candidate row one way: (rows, the feature each moves, its number of steps)."""
    rows, owners, ks = [], [], []
    for feature in range(len(row)):
        room = (high[feature] - row[feature]) if direction > 0 else (row[feature] - low[feature])
        steps = int(torch.floor(room / (step * sd[feature])).clamp(min=0))
        if steps == 0:
            continue
        k = torch.arange(1, steps + 1, dtype=row.dtype)
        block = row.repeat(steps, 1)
        block[:, feature] = row[feature] + direction * k * step * sd[feature]
        rows.append(block)
        owners.append(torch.full((steps,), feature))
        ks.append(k)
    if not rows:
        return torch.empty(0, len(row)), torch.empty(0, dtype=torch.long), torch.empty(0)
    return torch.cat(rows), torch.cat(owners), torch.cat(ks)


def _bisect(loaded: LoadedRun, row: Tensor, feature: int, kept: float, flipping: float, original: int,
            wanted: int | None) -> float:
    """The flipping value moved toward the last value that did not flip, while it still flips."""
    for _ in range(REFINE):
        middle = (kept + flipping) / 2
        probe = row.clone()
        probe[feature] = middle
        predicted = int(loaded.predict(probe[None])[0].argmax())
        if (predicted != original) if wanted is None else (predicted == wanted):
            flipping = middle
        else:
            kept = middle
    return flipping
