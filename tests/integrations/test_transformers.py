"""Hugging Face's Trainer with DlxCallback (issue 32): a tiny random BERT fine-tuned for a few steps is a
dlx run with its arguments and config as params, its loss and eval histories, its status, and a
save_pretrained checkpoint the Explain page explains (token attributions, attention, faithfulness)."""
from __future__ import annotations

import json

import pytest

from dlx.store import default_store
from tests.helpers.explain_page import open_page, texts
from tests.helpers.runs import shared_home  # noqa: F401 (the module's data directory)
from tests.helpers.tiny_bert import make_trainer

pytest.importorskip("accelerate")  # the Trainer needs it (the `transformers` extra)


@pytest.fixture(scope="module")
def trained(shared_home, tmp_path_factory):  # noqa: F811
    from dlx.integrations.transformers import DlxCallback

    callback = DlxCallback(experiment="hf", name="tiny-bert")
    trainer = make_trainer(str(tmp_path_factory.mktemp("hf-out")), [callback])
    trainer.train()
    return callback.run.id


@pytest.fixture
def dlx_home(shared_home):  # noqa: F811
    return shared_home


def test_trainer_run_has_arguments_and_config_as_params_and_succeeds(trained):
    run = default_store().get_run(trained)
    assert run.status == "succeeded" and run.name == "tiny-bert" and run.experiment == "hf"
    assert run.model == "BertForSequenceClassification"
    assert json.loads(run.params["learning_rate"]) == 5e-3 and json.loads(run.params["max_steps"]) == 6
    assert json.loads(run.params["model.num_hidden_layers"]) == 2 and json.loads(run.params["model.hidden_size"]) == 32


def test_every_logging_step_and_eval_metric_is_a_point_at_the_global_step(trained):
    store = default_store()
    loss = store.metric_history(trained, "loss")
    assert loss.steps.tolist() == [1, 2, 3, 4, 5, 6] and all(v > 0 for v in loss.values)
    for key in ("learning_rate", "grad_norm", "epoch"):
        assert store.metric_history(trained, key).steps.tolist() == [1, 2, 3, 4, 5, 6]
    assert store.metric_history(trained, "eval_loss").steps.tolist() == [3, 6]
    assert store.get_run(trained).metrics["train_loss"] > 0


def test_the_model_is_stored_as_safetensors_with_its_tokenizer(trained):
    from dlx import settings

    folder = settings.run_dir(trained) / "model"
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "dlx_samples.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    best, = [a for a in default_store().artifacts(trained, "checkpoint") if a.name == "best"]
    assert best.meta == {"format": "transformers", "step": 6}


def test_explain_page_draws_token_attributions_attention_and_scores_for_the_trainer_run(trained, monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    at = open_page(run=str(trained))
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert sum(trace["type"] == "heatmap" for trace in figures[0]["data"]) == 2 * 2  # model view: 2 layers × 2 heads
    assert "Layer Integrated Gradients" in texts(at)
    assert sum("<span" in str(h.proto.body) for h in at.get("html")) >= 2  # coloured words per method
    assert "True class: positive" in texts(at)  # the eval sentences kept beside the model
    at.number_input(key="explain.text.n").set_value(2).run()
    at.button(key="explain.text.score").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table, = [d.value for d in at.dataframe if "mean rank" in d.value.columns]
    assert {"Random", "Layer Integrated Gradients"} <= set(table["method"])


def test_an_exception_in_training_fails_the_run_with_it(tmp_path):
    from dlx.integrations.transformers import DlxCallback

    class Broken(DlxCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise RuntimeError("the GPU caught fire")

    callback = Broken(name="broken")
    trainer = make_trainer(str(tmp_path), [callback], max_steps=4, eval_strategy="no")
    with pytest.raises(RuntimeError, match="caught fire"):
        trainer.train()
    run = default_store().get_run(callback.run.id)
    assert run.status == "failed" and run.error == "RuntimeError: the GPU caught fire"
    assert default_store().metric_history(run.id, "loss").steps.tolist() == [1]  # step 2 failed before its log
    assert default_store().artifacts(run.id, "checkpoint") == []


def test_ctrl_c_cancels_the_run(tmp_path):
    from dlx.integrations.transformers import DlxCallback

    class Interrupted(DlxCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    callback = Interrupted()
    trainer = make_trainer(str(tmp_path), [callback], max_steps=4, eval_strategy="no")
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert default_store().get_run(callback.run.id).status == "cancelled"


def test_report_to_dlx_records_the_run(tmp_path):
    import dlx.integrations.transformers  # noqa: F401 (registers "dlx" with transformers)
    from dlx.integrations.transformers import DlxCallback

    trainer = make_trainer(str(tmp_path), [], max_steps=2, eval_strategy="no", report_to="dlx", project="reported",
                           run_name="by-name")
    callback, = [c for c in trainer.callback_handler.callbacks if isinstance(c, DlxCallback)]
    trainer.train()
    run = default_store().get_run(callback.run.id)
    assert run.status == "succeeded" and run.name == "by-name" and run.experiment == "reported"
    assert default_store().metric_history(run.id, "loss").steps.tolist() == [1, 2]
    assert [a.name for a in default_store().artifacts(run.id, "checkpoint")] == ["best", "last"]


def test_a_callback_added_after_construction_fails_the_run_with_the_exception_at_once(tmp_path):
    from dlx.integrations.transformers import DlxCallback

    callback = DlxCallback(name="added late")
    trainer = make_trainer(str(tmp_path), [], max_steps=4, eval_strategy="no")
    trainer.add_callback(callback)
    steps = 0
    step = trainer.training_step

    def failing_step(*args, **kwargs):  # the model's forward pass failing at the third step
        nonlocal steps
        steps += 1
        if steps == 3:
            raise RuntimeError("CUDA out of memory")
        return step(*args, **kwargs)

    trainer.training_step = failing_step
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train()
    run = default_store().get_run(callback.run.id)  # recorded when train() raised, not at the process's exit
    assert run.status == "failed" and run.error == "RuntimeError: CUDA out of memory"
    assert default_store().metric_history(run.id, "loss").steps.tolist() == [1, 2]
