"""Explanation work over many samples runs as an "explain" job on a real worker, with progress and a stored result."""
from __future__ import annotations

import numpy as np
import pytest

from dlx import settings
from dlx.errors import DlxError
from dlx.explain.jobs import ExplainTask, find_job, run_task, submit_task, task_result
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.scoring import Scores
from dlx.jobs.failures import failure_reason
from dlx.store import FINAL_STATES, default_store
from tests.helpers.processes import train_in_process, wait_for


def ended(job_id: int):
    return wait_for(lambda: (job := default_store().queue.get_job(job_id)).status in FINAL_STATES and job,
                    timeout=180, message=f"explain job {job_id} to end")


def test_global_importance_job_runs_on_the_worker_and_stores_its_result(worker):
    store = default_store()
    run_id = train_in_process({"dataset": "breast_cancer", "model": "mlp", "epochs": 2})
    task = ExplainTask(run_id=run_id, task="global_importance", methods=["integrated_gradients",
                                                                          "feature_ablation"], n_samples=80)
    job_id = submit_task(store, task)
    assert find_job(store, task).id == job_id
    job = ended(job_id)
    assert job.status == "succeeded", (settings.logs_dir() / f"job-{job_id}.log").read_text()
    assert job.progress == 1.0
    assert store.get_run(run_id).status == "succeeded"  # an explain job leaves its run as it was
    result = task_result(get_loaded_run(store, run_id), task)
    assert result.features.shape == (80, 30)
    for method in task.methods:
        assert result.attributions[method].shape == (80, 30)
        assert result.mean_abs(method).shape == (30,) and (result.mean_abs(method) > 0).any()


def test_explain_job_with_a_bad_task_fails_with_the_reason_in_its_log(worker, trained_run):
    payload = {"run_id": trained_run, "task": "global_importance", "methods": ["lime"]}
    job_id = default_store().queue.submit_job("explain", payload, trained_run)
    job = ended(job_id)
    assert job.status == "failed"
    assert failure_reason(job).startswith("method: unknown attribution method 'lime'; choose one of")


def test_faithfulness_task_scores_methods_and_a_random_reference(trained_run):
    loaded = get_loaded_run(default_store(), trained_run)
    task = ExplainTask(run_id=trained_run, task="faithfulness", methods=["saliency", "grad_cam"], n_samples=12,
                       sensitivity=False)
    assert task_result(loaded, task) is None
    seen = []
    computed = run_task(loaded, task, seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    stored = task_result(loaded, task)
    assert isinstance(stored, Scores)
    assert [row["method"] for row in stored.table()] == [row["method"] for row in computed.table()]
    assert {row["method"] for row in stored.table()} == {"Saliency", "Grad-CAM", "Random (reference)"}
    assert stored.deletion["saliency"].shape == (12, 21)
    np.testing.assert_allclose(stored.metrics["grad_cam"]["deletion_auc"], computed.metrics["grad_cam"]["deletion_auc"])


def test_a_task_is_checked_before_it_is_queued(trained_run):
    store = default_store()
    with pytest.raises(DlxError, match="integrated_gradients.n_steps: 0 is outside"):
        submit_task(store, ExplainTask(run_id=trained_run, task="faithfulness", methods=["integrated_gradients"],
                                params={"integrated_gradients": {"n_steps": 0}}))
    with pytest.raises(DlxError, match="unknown baseline 'noise'"):
        submit_task(store, ExplainTask(run_id=trained_run, task="faithfulness", methods=["saliency"], baseline="noise"))
