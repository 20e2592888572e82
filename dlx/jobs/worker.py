"""The worker: claims queued jobs, runs each in its own process, heartbeats, honours cancels.

Concurrency: one job per GPU (each child sees only its GPU through CUDA_VISIBLE_DEVICES)
and up to `DLX_CPU_JOBS` CPU jobs. The executor keeps a standby process ready per free slot
(at least one, at most `DLX_PREWARM`), so a claimed job does not wait for a fresh process to
import torch.

Rows can vanish under a running worker (a run deleted while its job runs): every row read here
may be None, and a job whose row is gone is stopped and forgotten, never fatal to the worker.
SQLite reuses the id of a deleted row, so a job is recognised as this worker's by its claim
(worker id and start time), not by its id alone: a new job that took the id is left alone.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeGuard

from dlx import settings
from dlx.jobs import orphans
from dlx.jobs.executors import Handle, get_executor
from dlx.jobs.ray_executor import Cluster
from dlx.store import Store, default_store
from dlx.training.devices import gpu_count

if TYPE_CHECKING:
    from db.models import Job

POLL = 0.25  # seconds between looks at the queue
HEARTBEAT = settings.HEARTBEAT_INTERVAL
CANCEL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


@dataclass
class Running:
    job_id: int
    handle: Handle
    gpu: int | None
    claimed_at: datetime | None  # the row's started_at as claimed: with the worker id, it tells our row
    cancel_sent_at: float | None = None
    slot: bool = True  # a search's driver takes none: it only waits on the trials it queues


@dataclass
class Worker:
    cpu_slots: int = field(default_factory=settings.cpu_job_slots)
    gpus: int = -1  # -1: count them (dlx.training.devices, without importing torch in the worker)
    store: Store = field(default_factory=default_store)  # whose queue it serves; its jobs get the same
    id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    running: dict[int, Running] = field(default_factory=dict)
    _stop: bool = False

    def __post_init__(self) -> None:
        self.executor = get_executor()
        self.cores = os.cpu_count() or 1
        self.nodes = 1
        if hasattr(self.executor, "capacity"):  # a cluster (ray): its CPUs and GPUs are the slots
            self._count_cluster(self.executor.capacity())
        elif self.gpus < 0:
            self.gpus = gpu_count()

    def threads_per_job(self) -> int:
        """CPU threads each job may use: the cores shared by every slot, unless OMP_NUM_THREADS says.

        Two jobs with a thread per core each on the same cores made both 2-3x slower (their
        thread pools wait on each other), so the cores are split between the slots.
        """
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            return max(1, int(os.environ["OMP_NUM_THREADS"]))
        return max(1, self.cores // (self.cpu_slots + self.gpus))

    def _count_cluster(self, cluster: Cluster) -> None:
        """Slots from the cluster's resources, not this machine's: one CPU job per CPU, one job per GPU."""
        self.nodes, self.cores, self.gpus = cluster.nodes, cluster.cpus, cluster.gpus
        self.cpu_slots = max(1, cluster.cpus)

    # -- the loop ----------------------------------------------------------------------------
    def serve(self, idle_exit: float | None = None) -> None:
        """Run until SIGTERM/SIGINT (or `idle_exit` seconds with nothing to do)."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        last_beat = last_reap = 0.0
        idle_since = time.monotonic()
        print(f"worker {self.id}: {self.cpu_slots} CPU slot(s), {self.gpus} GPU(s), "
              f"{self.threads_per_job()} CPU thread(s) per job", flush=True)
        orphans.sweep()  # job processes a dead worker left behind: they would overwrite their runs
        try:
            while not self._stop:
                self._collect_finished()
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT:
                    self._heartbeat()
                    self._stop_vanished()
                    last_beat = now
                if now - last_reap >= HEARTBEAT * 2:
                    self.store.queue.reap_stale()
                    last_reap = now
                self._enforce_cancels()
                self.executor.keep_ready(self._free_slots())
                self._claim_jobs()
                if self.running:
                    idle_since = now
                elif idle_exit is not None and now - idle_since > idle_exit:
                    break
                time.sleep(POLL)
        finally:
            self._shutdown()

    def _request_stop(self, signum, frame) -> None:
        self._stop = True

    # -- steps ---------------------------------------------------------------------------------
    def _free_gpu(self) -> int | None:
        busy = {r.gpu for r in self.running.values()}
        return next((g for g in range(self.gpus) if g not in busy), None)

    def _cpu_busy(self) -> int:
        return sum(1 for r in self.running.values() if r.gpu is None and r.slot)

    def _free_slots(self) -> int:
        """Slots a new job could take now, counted as at least one (the next job to come)."""
        gpus_busy = len({r.gpu for r in self.running.values() if r.gpu is not None})
        return max(1, self.gpus - gpus_busy + max(0, self.cpu_slots - self._cpu_busy()))

    def _claim_jobs(self) -> None:
        while True:
            gpu = self._free_gpu()
            cpu_free = self._cpu_busy() < self.cpu_slots
            if gpu is None and not cpu_free:
                return
            job = self.store.queue.claim(self.id, cpu_only=gpu is None)
            if job is None:
                return
            use_gpu = gpu if job.device != "cpu" and gpu is not None else None
            if use_gpu is None and not cpu_free and job.kind != "search":  # a CPU job while only a GPU slot is free
                use_gpu = gpu
            self._start(job, use_gpu)

    def _start(self, job: Job, gpu: int | None) -> None:
        log_path = settings.logs_dir() / f"job-{job.id}.log"
        env = {"CUDA_VISIBLE_DEVICES": "" if gpu is None else str(gpu), "DLX_JOB_ID": str(job.id),
               "DLX_ASSIGNED_GPU": "" if gpu is None else str(gpu), "OMP_NUM_THREADS": str(self.threads_per_job()),
               "DLX_DATABASE_URL": self.store.url}
        handle = self.executor.start(job.id, log_path, env)
        relative = str(log_path.relative_to(settings.home()))
        item = self.running[job.id] = Running(job.id, handle, gpu, job.started_at, slot=job.kind != "search")
        if not self.store.queue.record_start(job.id, handle.pid, relative, lambda row: self._ours(row, item)):
            print(f"job {job.id} was deleted as it started", flush=True)  # its process finds no job and exits
            return
        print(f"started job {job.id} ({job.kind}) pid {handle.pid} on "
              f"{'cuda:' + str(gpu) if gpu is not None else 'cpu'}", flush=True)

    def _collect_finished(self) -> None:
        for job_id, item in list(self.running.items()):
            code = item.handle.poll()
            if code is None:
                continue
            del self.running[job_id]
            job = self.store.queue.get_job(job_id)
            if not self._ours(job, item):
                print(f"job {job_id} exited with {code}; its row was deleted while it ran", flush=True)
                continue
            if item.cancel_sent_at is not None or job.cancel_requested:
                self.store.queue.finish_job(job_id, "cancelled", "cancelled by request")
            elif code == 0:
                self.store.queue.finish_job(job_id, "succeeded", None)
            else:  # the executor's own reason (Ray lost the task) before the exit code's
                reason = getattr(item.handle, "failure", None) or _exit_reason(code)
                self.store.queue.finish_job(job_id, "failed", reason)
            print(f"job {job_id} exited with {code}", flush=True)

    def _heartbeat(self) -> None:
        self.store.queue.heartbeat(list(self.running))
        if hasattr(self.executor, "capacity"):
            self._count_cluster(self.executor.capacity())
        info = {"cpu_slots": self.cpu_slots, "gpus": self.gpus, "running": sorted(self.running),
                "executor": self.executor.name, "nodes": self.nodes, "pid": os.getpid()}
        self.store.workers.beat(self.id, json.loads(json.dumps(info)))

    def _stop_vanished(self) -> None:
        """Stop jobs whose row is gone (their run was deleted): nothing they write can be stored."""
        if not self.running:
            return
        rows = self.store.queue.jobs(list(self.running))
        for job_id, item in self.running.items():
            if not self._ours(rows.get(job_id), item) and not item.cancel_sent_at:
                print(f"job {job_id} was deleted while it ran; stopping it", flush=True)
                item.handle.terminate()
                item.cancel_sent_at = time.monotonic()

    def _ours(self, row: Job | None, item: Running) -> TypeGuard[Job]:
        """Whether this row is the job this worker claimed (not deleted, nor a new job reusing its id)."""
        return row is not None and row.worker == self.id and row.started_at == item.claimed_at

    def _enforce_cancels(self) -> None:
        """SIGTERM once (the job flushes and ends cancelled), SIGKILL if it lingers."""
        if not self.running:
            return
        to_cancel = set(self.store.queue.cancel_requested(list(self.running)))
        now = time.monotonic()
        for job_id, item in self.running.items():
            if job_id in to_cancel and not item.cancel_sent_at:
                item.handle.terminate()
                item.cancel_sent_at = now
            elif item.cancel_sent_at and now - item.cancel_sent_at > CANCEL_GRACE:
                item.handle.kill()

    def _shutdown(self) -> None:
        for item in self.running.values():
            item.handle.terminate()
        deadline = time.monotonic() + CANCEL_GRACE
        while self.running and time.monotonic() < deadline:
            for job_id, item in list(self.running.items()):
                if item.handle.poll() is not None:
                    del self.running[job_id]
                    self._fail_shut_down(item)
            time.sleep(0.1)
        for item in self.running.values():
            item.handle.kill()
            self._fail_shut_down(item)
        self.executor.shutdown()  # after the jobs: a Ray executor's handles need its connection
        self.store.workers.remove(self.id)

    def _fail_shut_down(self, item: Running) -> None:
        if self._ours(self.store.queue.get_job(item.job_id), item) and not self.store.queue.requeue(item.job_id):
            self.store.queue.finish_job(item.job_id, "failed", "the worker was shut down while this job ran")


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the job process was killed by {name}{hint}"
    return f"the job process exited with code {code}; see its log"
