"""Training-data attribution (TracIn over a run's kept checkpoints): Captum's scores, planted noise found far
above chance, proponents of a sample's own class, the CLI's JSON and the job on a real worker.

One digits CNN trained 5 epochs with checkpoint_every=1 and label_noise=0.1 is shared by the module."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from captum.influence import TracInCPFast
from safetensors.torch import load_file

from dlx import settings
from dlx.cli import main
from dlx.config import RunConfig
from dlx.data import load_dataset
from dlx.errors import DlxError
from dlx.explain.influence import (
    InfluenceTask,
    checkpoint_rates,
    final_layer,
    find_job,
    influence,
    layer_choices,
    missing_parts,
    noise_recall,
    stored_sample_influence,
    stored_self_influence,
    submit_task,
)
from dlx.models import MODELS, build_model
from dlx.store import FINAL_STATES, default_store
from dlx.training.kept import kept_checkpoints
from dlx.training.label_noise import plant_label_noise, recorded_label_noise
from dlx.training.train import tokenize_bundle
from tests.helpers.processes import start_worker, stop_process, train_in_process, wait_for

SAMPLES = list(range(8))


@pytest.fixture(scope="module")
def dlx_home(shared_home):
    return shared_home


@pytest.fixture(scope="module")
def noisy_run(dlx_home) -> int:
    """The run, with its self-influence and the first test samples' influence computed (as the job does)."""
    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 5, "checkpoint_every": 1,
                               "label_noise": 0.1})
    influence(default_store(), InfluenceTask(run_id=run_id, indices=SAMPLES))
    return run_id


def by_hand_rates(config: RunConfig, steps_per_epoch: int) -> list[float]:
    """OneCycleLR's lr at each step, averaged per epoch (every epoch is kept)."""
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    used = []
    for step in range(total):
        used.append(optimizer.param_groups[0]["lr"])
        if step < total - 1:
            optimizer.step()
            schedule.step()
    return [float(np.mean(used[e * steps_per_epoch:(e + 1) * steps_per_epoch])) for e in range(config.epochs)]


def test_scores_equal_captums_tracincpfast_called_by_hand_on_the_same_checkpoints(noisy_run):
    store = default_store()
    run = store.get_run(noisy_run)
    config = RunConfig(**run.config)
    bundle, _ = plant_label_noise(load_dataset("digits", 0, 0.15, 0.2), 0.1, 0)
    kept = kept_checkpoints(store, noisy_run)
    rates = dict(zip([str(k.path) for k in kept], by_hand_rates(config, run.summary["steps_per_epoch"])))

    def load(model, path):
        model.load_state_dict(load_file(path))
        return rates[path]

    model = build_model("cnn", bundle.meta).eval()
    tracin = TracInCPFast(model, model.classifier[-1], torch.utils.data.TensorDataset(bundle.train.x, bundle.train.y),
                          list(rates), load, loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=100)
    found = stored_self_influence(store, noisy_run)
    assert found.names == [k.name for k in kept] and found.epochs == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(found.rates, list(rates.values()), rtol=1e-9)
    np.testing.assert_allclose(found.scores, tracin.self_influence().numpy(), rtol=1e-4, atol=1e-7)
    samples = [stored_sample_influence(store, noisy_run, i) for i in SAMPLES]
    targets = torch.tensor([s.target for s in samples])
    expected = tracin.influence((bundle.test.x[SAMPLES], targets), k=None).numpy()
    np.testing.assert_allclose(np.stack([s.scores for s in samples]), expected, rtol=1e-4, atol=1e-6)
    indices, _ = tracin.influence((bundle.test.x[SAMPLES], targets), k=5, proponents=True)
    assert [[i for i, _ in s.top(5)] for s in samples] == indices.tolist()
    assert [s.label for s in samples] == bundle.test.y[SAMPLES].tolist()


def test_checkpoint_rates_are_the_runs_logged_learning_rates(noisy_run):
    """The schedule rebuilt from the config gives the lr the run logged at each logged step."""
    store = default_store()
    run = store.get_run(noisy_run)
    config, spe = RunConfig(**run.config), run.summary["steps_per_epoch"]
    history = store.metric_history(noisy_run, "lr")
    total = spe * config.epochs
    per_step = checkpoint_rates(config.model_copy(update={"epochs": total}), 1, list(range(1, total + 1)))
    logged = [(int(s), v) for s, v in zip(history.steps, history.values) if s < total]
    assert logged
    for step, value in logged:
        assert per_step[step] == pytest.approx(value, rel=1e-9)  # logged after the step: the next step's lr


def test_the_flipped_labels_are_found_far_above_chance(noisy_run):
    store = default_store()
    noise = recorded_label_noise(store, noisy_run)
    found = stored_self_influence(store, noisy_run)
    scored = noise_recall(found.ranking, noise.indices)
    # Measured: recall 0.50 / 0.92 / 1.00 in the top 5 / 10 / 20%, AUPRC 0.98 (random: 0.05 / 0.10 / 0.20, 0.10).
    assert scored["recall"][0.2] >= 0.8 > 4 * scored["random"]["recall"][0.2] - 0.01
    assert scored["auprc"] >= 0.6 > 5 * scored["random"]["auprc"]
    assert (found.labels[noise.indices] == noise.labels).all()  # scored on the labels the run trained on


def test_noise_recall_of_a_perfect_and_a_worst_ranking():
    perfect = noise_recall([3, 7, 0, 1, 2, 4, 5, 6, 8, 9], [3, 7])
    assert perfect["recall"] == {0.05: 0.5, 0.1: 0.5, 0.2: 1.0} and perfect["auprc"] == 1.0
    worst = noise_recall(list(range(10)), [8, 9])
    assert worst["recall"][0.2] == 0.0 and worst["auprc"] == pytest.approx((1 / 9 + 2 / 10) / 2)
    assert worst["random"]["auprc"] == 0.2


def test_proponents_of_a_sample_are_mostly_of_its_class_and_opponents_of_others(noisy_run):
    store = default_store()
    labels = stored_self_influence(store, noisy_run).labels
    same = [np.mean([labels[i] == s.target for i, _ in s.top(10)])
            for s in (stored_sample_influence(store, noisy_run, i) for i in SAMPLES)]
    assert np.mean(same) >= 0.8, same
    opposed = [np.mean([labels[i] == s.target for i, _ in s.top(10, proponents=False)])
               for s in (stored_sample_influence(store, noisy_run, i) for i in SAMPLES)]
    assert np.mean(opposed) < np.mean(same)
    assert missing_parts(store, InfluenceTask(run_id=noisy_run, indices=SAMPLES)) is None  # cached


def test_cli_self_json_ranks_every_training_example_and_lists_the_flipped(noisy_run, capsys):
    assert main(["influence", str(noisy_run), "--self", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"ranking", "flipped"}
    assert sorted(printed["ranking"]) == list(range(len(stored_self_influence(default_store(), noisy_run).scores)))
    assert printed["flipped"] == recorded_label_noise(default_store(), noisy_run).indices
    assert main(["influence", str(noisy_run), "--self"]) == 0
    assert "planted noise" in capsys.readouterr().out


def test_cli_sample_runs_the_job_on_a_real_worker_and_prints_proponents_and_opponents(noisy_run, dlx_home, capsys):
    store = default_store()
    task = InfluenceTask(run_id=noisy_run, indices=[20])
    job_id = submit_task(store, task)
    assert find_job(store, task).id == job_id
    worker = start_worker(dlx_home)
    try:
        job = wait_for(lambda: (j := store.queue.get_job(job_id)).status in FINAL_STATES and j, timeout=180,
                       message="the influence job to end")
    finally:
        stop_process(worker)
    assert job.status == "succeeded", (settings.logs_dir() / f"job-{job_id}.log").read_text()
    assert job.progress == 1.0
    assert main(["influence", str(noisy_run), "--sample", "20", "--top", "3", "--json", "--no-worker"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"sample", "target", "label", "proponents", "opponents"} and printed["sample"] == 20
    assert len(printed["proponents"]) == len(printed["opponents"]) == 3
    assert set(printed["proponents"][0]) == {"index", "label", "score"}
    assert printed["proponents"][0]["score"] >= printed["proponents"][-1]["score"] > printed["opponents"][0]["score"]


def test_a_run_without_kept_checkpoints_is_refused_with_the_option_to_use():
    run_id = default_store().create_run({"dataset": "digits", "model": "cnn"}, status="succeeded")
    with pytest.raises(DlxError, match="kept no checkpoints over training; launch it with checkpoint_every=1"):
        submit_task(default_store(), InfluenceTask(run_id=run_id))
    assert main(["influence", str(run_id), "--self", "--no-worker"]) == 2


def test_tracincp_on_named_layers_agrees_with_the_fast_final_layer_and_an_unknown_layer_is_refused(noisy_run):
    store = default_store()
    influence(store, InfluenceTask(run_id=noisy_run, layers=["classifier.4"]))
    full = stored_self_influence(store, noisy_run, ["classifier.4"])
    fast = stored_self_influence(store, noisy_run)
    assert full.layers == fast.layers == ["classifier.4"]
    assert np.corrcoef(full.scores, fast.scores)[0, 1] > 0.99  # TracInCP adds the bias's gradient
    with pytest.raises(DlxError, match="layers: 'nowhere' is not a layer of this model") as err:
        influence(store, InfluenceTask(run_id=noisy_run, layers=["nowhere"]))
    assert err.value.field == "layers"


def test_text_runs_score_the_classifier_head_as_captum_does():
    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "checkpoint_every": 1, "device": "cpu",
                               "model_options": {"layers": 1, "heads": 2, "hidden": 16, "max_length": 24}})
    store = default_store()
    influence(store, InfluenceTask(run_id=run_id, indices=[0]))
    found = stored_self_influence(store, run_id)
    config = RunConfig(**store.get_run(run_id).config)
    bundle = load_dataset("sentiment", 0, 0.15, 0.2)
    model = build_model("transformer", bundle.meta, **config.model_options).eval()
    train = tokenize_bundle(bundle, model).train
    kept, = kept_checkpoints(store, run_id)

    def load(m, path):
        m.load_state_dict(load_file(path))
        return found.rates[0]

    tracin = TracInCPFast(model, model.head, torch.utils.data.TensorDataset(train.x, train.attention_mask, train.y),
                          [str(kept.path)], load, loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=256)
    assert found.layers == ["head"]
    np.testing.assert_allclose(found.scores, tracin.self_influence().numpy(), rtol=1e-3, atol=1e-6)
    assert stored_sample_influence(store, run_id, 0).scores.shape == (len(train),)
    inner = "encoder.encoder.layer.0.output.dense"  # a layer the page offers: the encoder's weights, by TracInCP
    assert inner in layer_choices(model)
    influence(store, InfluenceTask(run_id=run_id, indices=[0], layers=[inner]))
    deep = stored_self_influence(store, run_id, [inner])
    assert deep.layers == [inner] and np.isfinite(deep.scores).all() and (deep.scores > 0).all()
    assert not np.allclose(deep.scores, found.scores)  # a cache entry of its own, not the head's
    assert stored_sample_influence(store, run_id, 0, layers=[inner]).scores.shape == (len(train),)


def test_the_layers_offered_for_tracincp_are_each_models_linear_and_convolution_layers():
    """Every registered model offers its final layer (the default's) among the choices, and never a projection
    inside an attention block (its forward is not called, so Captum would get no gradient for it)."""
    for model_name in MODELS:
        kind = MODELS[model_name].kinds[0]
        bundle = load_dataset({"image": "digits", "table": "iris", "text": "sentiment"}[kind], 0, 0.15, 0.2)
        model = build_model(model_name, bundle.meta)
        choices = layer_choices(model)
        assert final_layer(model, bundle.meta.num_classes) == choices[-1], model_name
        assert not [c for c in choices if "out_proj" in c], model_name
        modules = dict(model.named_modules())
        assert all(isinstance(modules[c], torch.nn.Linear | torch.nn.Conv2d) for c in choices), model_name


def test_the_one_file_report_holds_the_self_influence_review_and_a_samples_proponents(noisy_run):
    from dlx.views.report import report_html

    store = default_store()
    text = report_html(store, noisy_run)
    ranking = stored_self_influence(store, noisy_run).ranking
    flipped = set(recorded_label_noise(store, noisy_run).indices)
    # a review per stored choice of layers (a test here stores TracInCP's too); the final layer's is the first
    heading = "Self-influence of the training set (TracIn over 5 checkpoints"
    review = text.split(heading)[1].split("<h")[0]
    assert f"<td>1</td><td>{ranking[0]}</td>" in review  # the most self-influential example ranked first
    assert review.count("<td>flipped</td>") == sum(i in flipped for i in ranking[:20])
    assert "recall in top 20%" in text and "random (expected)" in text
    assert f"Training examples that moved test sample #{SAMPLES[0]}" in text
    assert "Stored results this report does not draw" not in text


def test_an_uploaded_images_proponents_equal_those_of_the_same_test_sample_and_are_cached(noisy_run):
    from dlx.explain.influence import upload_influence
    from dlx.explain.models_cache import get_loaded_run

    store = default_store()
    loaded = get_loaded_run(store, noisy_run)
    image = loaded.bundle.test.x[SAMPLES[:1]]  # as an upload: an input outside the job's indices
    assert upload_influence(store, noisy_run, image + 0.0, compute=False) is None  # not computed yet
    [uploaded] = upload_influence(store, noisy_run, image)
    sample = stored_sample_influence(store, noisy_run, SAMPLES[0])
    assert uploaded.split == "upload" and uploaded.target == sample.target
    np.testing.assert_allclose(uploaded.scores, sample.scores, rtol=1e-4, atol=1e-4 * np.abs(sample.scores).max())
    assert [i for i, _ in uploaded.top(5)] == [i for i, _ in sample.top(5)]  # the same proponents
    [again] = upload_influence(store, noisy_run, image, compute=False)  # stored under the image's digest
    assert np.array_equal(again.scores, uploaded.scores)
