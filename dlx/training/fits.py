"""A RunConfig checked against the data set and model registries: what a job would otherwise fail on after
queueing. The launch (the form, `dlx run`, sweeps) checks every config here, and the train job again."""
from __future__ import annotations

from typing import Any

from dlx.config import RunConfig, parse_config
from dlx.data import DATASETS, DatasetMeta
from dlx.data.registry import check_split
from dlx.errors import DlxError
from dlx.models.registry import check_model_fits, check_options, check_size


def check_fits(config: RunConfig) -> RunConfig:
    """`config`, its model options converted to the builder's types; a DlxError naming the field when its data
    set or model is unknown, the model does not take the data, is too big, or a split would be too small."""
    try:
        if config.dataset not in DATASETS:
            raise DlxError(f"dataset: unknown data set {config.dataset!r}; choose one of {sorted(DATASETS)}")
        entry = DATASETS[config.dataset]
        check_model_fits(config.model, entry.kind)
        config.model_options = check_options(config.model, config.model_options)
        if entry.shape is not None and entry.classes is not None:
            shape_only = DatasetMeta(entry.name, entry.kind, tuple(map(str, range(entry.classes))), entry.shape)
            check_size(config.model, shape_only, config.model_options)
        check_split(config.dataset, config.val_fraction, config.test_fraction)
    except DlxError as err:
        # Named as parse_config names a whole-config problem: by the field its message starts with.
        message = str(err)
        raise DlxError(message, field=message.partition(":")[0].partition(".")[0]) from None
    return config


def launch_config(values: dict[str, Any]) -> RunConfig:
    """Values validated into a RunConfig (`parse_config`) that fits the registries (`check_fits`)."""
    return check_fits(parse_config(values))
