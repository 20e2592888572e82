"""Run configs: bad values are rejected before anything is queued, naming the field to fix (the checks
against the registries: tests/training/test_fits.py)."""
from __future__ import annotations

import pytest

from dlx.config import RunConfig, coerce_value, expand_sweep, parse_config
from dlx.errors import DlxError


@pytest.mark.parametrize("values, field, reason", [
    ({"lr": 0}, "lr", "greater than 0"),
    ({"lr": -1}, "lr", "greater than 0"),
    ({"device": "gpu"}, "device", "must be auto, cpu, cuda or cuda:N"),
    ({"epochs": "x"}, "epochs", "valid integer"),
    ({"epochs": 0}, "epochs", "greater than or equal to 1"),
    ({"optimizer": "lbfgs"}, "optimizer", "'sgd', 'adam' or 'adamw'"),
    ({"learning_rate": 0.1}, "learning_rate", "Extra inputs are not permitted"),
])
def test_bad_value_is_rejected_naming_the_field(values, field, reason):
    with pytest.raises(DlxError) as caught:
        parse_config(values)
    message = str(caught.value)
    assert message.startswith(f"{field}: "), message
    assert reason in message
    assert caught.value.field == field


def test_every_bad_field_is_named_at_once():
    with pytest.raises(DlxError) as caught:
        parse_config({"lr": -1, "epochs": "x"})
    assert "lr: " in str(caught.value) and "epochs: " in str(caught.value)


def test_table_model_on_a_table_data_set_is_accepted():
    config = parse_config({"dataset": "breast_cancer", "model": "mlp", "device": "cuda:1"})
    assert isinstance(config, RunConfig)
    assert (config.dataset, config.model, config.device) == ("breast_cancer", "mlp", "cuda:1")


def test_defaults_are_the_fast_learning_ones():
    config = parse_config({})
    assert (config.dataset, config.model, config.optimizer, config.lr, config.batch_size,
            config.schedule, config.epochs) == ("digits", "cnn", "adam", 3e-3, 32, "onecycle", 3)


def test_expand_sweep_makes_one_config_per_combination():
    configs = expand_sweep({"dataset": "digits", "model": "cnn", "sweep": "grid"},
                           {"lr": [0.001, 0.01], "batch_size": [16, 32, 64]})
    assert len(configs) == 6
    assert {(c.lr, c.batch_size) for c in configs} == {(lr, b) for lr in (0.001, 0.01) for b in (16, 32, 64)}
    assert all(c.sweep == "grid" and c.model == "cnn" for c in configs)


def test_expand_sweep_without_grid_is_the_base_config():
    assert expand_sweep({"epochs": 2}, {}) == [parse_config({"epochs": 2})]


def test_expand_sweep_rejects_an_empty_value_list_and_bad_values():
    with pytest.raises(DlxError) as caught:
        expand_sweep({}, {"lr": []})
    assert caught.value.field == "lr"
    with pytest.raises(DlxError) as caught:
        expand_sweep({}, {"lr": [0.1, -0.1]})
    assert caught.value.field == "lr"


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.01", 0.01), ("1e-3", 0.001), ("true", True), ("False", False), ("none", None),
    ("adam", "adam"),
])
def test_command_line_values_are_read_as_python_values(text, value):
    assert coerce_value(text) == value
