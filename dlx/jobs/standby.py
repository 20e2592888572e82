"""A standby job process: imports what jobs need before any job exists, then runs the one it is handed.

The local executor starts it ahead of time (`python -u -m dlx.jobs.standby`) so that a claimed
job skips the 2-3 s a fresh process spends importing torch and scikit-learn. What it imports is
`DLX_STANDBY_PRELOAD` (settings.standby_preload): by default what training an image or table model
needs, about 0.5 GB; captum and transformers (0.4 GB more) only with `all`, or when their job starts. It blocks
on one JSON line on stdin, `{"job_id", "log_path", "env"}`, then becomes that job's process:
same environment, output appended to the job's log, same `main(job_id)` as `dlx.jobs.entry`.
Stdin ending with no line (the worker stopped, or died) ends it; once it runs a job, the
lifeline (`dlx.jobs.lifeline`) ends it with the worker.

A worker keeps standbys only when one is likely to be used (see LocalExecutor): after a job, or
after `request()`, which the Launch page calls when opened so its user's launch starts warm.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback

from dlx import settings
from dlx.jobs import lifeline

HEAVY = ("torch", "sklearn", "torchvision", "captum", "transformers")  # named in the ready line: what it holds
REQUEST_FILE = "standby.request"  # under DLX_HOME; its modification time is the latest request


def request() -> None:
    """Ask this machine's workers to have a standby ready (a launch is likely soon)."""
    path = settings.home() / REQUEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path)


def requested_at() -> float:
    """When a standby was last requested (epoch seconds; 0.0 when never)."""
    try:
        return (settings.home() / REQUEST_FILE).stat().st_mtime
    except FileNotFoundError:
        return 0.0


# What `DLX_STANDBY_PRELOAD=train` preloads besides torch and the loop: the built-in data sets' loaders
# and the models built on torch alone. ResNet and ViT (torchvision: 120 MB, 1.5 s), text models
# (transformers) and explain jobs (captum) import theirs when their job starts.
TRAIN_MODULES = ("sklearn.datasets", "sklearn.metrics", "sklearn.model_selection", "dlx.models.cnn", "dlx.models.mlp")


def warm_up(preload: str = "train") -> None:
    """Import what a job imports, as `preload` (`settings.standby_preload`) says, and nothing more.

    `train`: torch, the training loop and TRAIN_MODULES; `all`: every job kind and model builder too.
    Nothing here may call `torch.cuda.*`: importing torch leaves CUDA alone, but the first CUDA
    call fixes which GPUs this process sees from CUDA_VISIBLE_DEVICES, which a standby learns
    only with its job. The same goes for the database: it is opened by the job, not before.
    """
    import sqlite3  # noqa: F401

    import alembic.command  # noqa: F401  (the schema check on the job's first query: 0.1 s)
    import alembic.config  # noqa: F401
    import torch

    import db.engine  # noqa: F401  (imported, not connected)
    import dlx.data  # noqa: F401  (the data set registry, every entry)
    import dlx.jobs.entry  # noqa: F401  (the entry point; a job kind's own module is imported by its job)
    import dlx.training.train  # noqa: F401
    from dlx.jobs.kinds import KIND_MODULES
    from dlx.models import MODELS
    from dlx.store.ingest import import_sqlite

    import_sqlite()
    for module in TRAIN_MODULES:
        importlib.import_module(module)
    if preload == "all":
        for module in dict.fromkeys(KIND_MODULES.values()):
            importlib.import_module(module)
        for entry in MODELS.values():  # the registry imports its builders' modules only when asked
            entry.builder  # noqa: B018

    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised before the job's CUDA_VISIBLE_DEVICES was known")


def take_over(order: dict) -> None:
    """Take on the job's environment; from here on, all output is appended to the job's log."""
    os.environ.update(order["env"])
    if "torch" in sys.modules and order["env"].get("OMP_NUM_THREADS", "").isdigit():
        sys.modules["torch"].set_num_threads(int(order["env"]["OMP_NUM_THREADS"]))  # torch read it when imported
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(order["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def serve() -> int:
    worker = lifeline.bind_to_parent()
    started = time.monotonic()
    preload = settings.standby_preload()
    try:
        warm_up(preload)
    except Exception:  # whatever the imports raise: its job still runs, as a fresh process would
        traceback.print_exc()
        print(f"standby pid {os.getpid()}: imports failed (above); its job will start cold", flush=True)
        warm = False
    else:
        held = ", ".join(name for name in HEAVY if name in sys.modules)
        print(f"standby pid {os.getpid()}: ready in {time.monotonic() - started:.1f} s "
              f"(DLX_STANDBY_PRELOAD={preload}: {held})", flush=True)
        warm = True
    line = sys.stdin.readline()
    if not line:
        return 0
    order = json.loads(line)
    take_over(order)
    if not warm:  # a fresh interpreter in this process: exactly the cold path, same pid and group
        if worker is not None:  # the new interpreter binds to the worker again (its watchdog thread)
            os.environ[lifeline.ENV] = str(worker)
        os.execv(sys.executable, [sys.executable, "-u", "-m", "dlx.jobs.entry", str(order["job_id"])])
    from dlx.jobs.entry import main

    return main(int(order["job_id"]))


if __name__ == "__main__":
    sys.exit(serve())
