"""Run configs checked against the data set and model registries at launch, naming the field to fix."""
from __future__ import annotations

import pytest

from dlx.config import RunConfig
from dlx.errors import DlxError
from dlx.training.fits import check_fits, launch_config


@pytest.mark.parametrize("values, field, reason", [
    ({"dataset": "imagenet"}, "dataset", "unknown data set 'imagenet'"),
    ({"dataset": "breast_cancer", "model": "cnn"}, "model", "does not take table data"),
    ({"model": "transformer9000"}, "model", "unknown model"),
])
def test_a_config_that_does_not_fit_the_registries_is_rejected_naming_the_field(values, field, reason):
    with pytest.raises(DlxError) as caught:
        launch_config(values)
    message = str(caught.value)
    assert message.startswith(f"{field}: "), message
    assert reason in message
    assert caught.value.field == field


def test_the_train_job_checks_a_stored_config_as_the_launch_does():
    with pytest.raises(DlxError, match="^dataset: unknown data set 'gone'") as caught:
        check_fits(RunConfig(dataset="gone"))
    assert caught.value.field == "dataset"


def test_table_model_on_a_table_data_set_is_accepted():
    config = launch_config({"dataset": "breast_cancer", "model": "mlp", "device": "cuda:1"})
    assert (config.dataset, config.model, config.device) == ("breast_cancer", "mlp", "cuda:1")
