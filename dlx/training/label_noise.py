"""Planted label noise (`label_noise`): a seeded fraction of the training labels flipped to another class,
the flipped indices kept with the run (a JSON file indexed as its "label_noise" artifact), so training-data
attribution can be scored against a known answer. Validation and test keep their true labels."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dlx import settings
from dlx.data import DataBundle
from dlx.data.streaming import FolderSplit
from dlx.errors import DlxError
from dlx.training.checkpoints import relative

if TYPE_CHECKING:
    from dlx.store import Store
    from dlx.tracking import Run

ARTIFACT = "label_noise"  # the artifact's kind and name; its meta holds the fraction and the count
FILE = "label_noise.json"


@dataclass(frozen=True)
class LabelNoise:
    """The training indices whose label was flipped (ascending), their true and planted labels."""

    fraction: float
    indices: list[int]
    original: list[int]
    labels: list[int]


def plant_label_noise(bundle: DataBundle, fraction: float, seed: int) -> tuple[DataBundle, LabelNoise]:
    """Flip round(fraction * N) seeded training labels, each to a different class drawn at random."""
    if isinstance(bundle.train, FolderSplit):
        raise DlxError("label_noise: image folders read from disk cannot flip their labels; "
                       "use a data set held in memory", field="label_noise")
    y = bundle.train.y
    count, classes = round(fraction * len(y)), bundle.meta.num_classes
    if count and classes < 2:
        raise DlxError("label_noise: a data set of one class has no other class to flip to", field="label_noise")
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(y), generator=generator)[:count].sort().values
    shift = torch.randint(1, max(classes, 2), (count,), generator=generator)  # 1..C-1: never the same class
    noisy = y.clone()
    noisy[indices] = (y[indices] + shift) % classes
    noise = LabelNoise(fraction, indices.tolist(), y[indices].tolist(), noisy[indices].tolist())
    return dataclasses.replace(bundle, train=dataclasses.replace(bundle.train, y=noisy)), noise


def record_label_noise(run: Run, noise: LabelNoise) -> None:
    """Keep the flipped indices with the run: a JSON file in its folder, indexed as an artifact."""
    path = settings.run_dir(run.id) / FILE
    path.write_text(json.dumps(dataclasses.asdict(noise)))
    run.log_artifact(ARTIFACT, ARTIFACT, relative(path), {"fraction": noise.fraction, "count": len(noise.indices)})
    run.update_summary({"label_noise_flipped": len(noise.indices)})


def recorded_label_noise(store: Store, run_id: int) -> LabelNoise | None:
    """The run's planted label noise as recorded when it trained, or None for a run without any."""
    for artifact in store.artifacts(run_id, ARTIFACT):
        path = settings.stored_path(artifact.path)
        if path.exists():
            return LabelNoise(**json.loads(path.read_text()))
    return None


def with_recorded_labels(bundle: DataBundle, noise: LabelNoise | None) -> DataBundle:
    """The bundle with the training labels the run trained on (its planted noise applied)."""
    if noise is None or not noise.indices:
        return bundle
    y = bundle.train.y.clone()
    y[noise.indices] = torch.tensor(noise.labels, dtype=y.dtype)
    return dataclasses.replace(bundle, train=dataclasses.replace(bundle.train, y=y))
