"""Which device a run uses, and what this machine has.

What this machine has is asked without importing torch here (550 MB in every process that does):
the app and an idle worker only count GPUs. A machine without `nvidia-smi` has no CUDA GPU (an
instant answer); where it exists, a child process asks torch once per process, so the count is
torch's own (CUDA_VISIBLE_DEVICES, a CPU-only build) and its memory goes when the child exits.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from dlx.errors import DlxError

if TYPE_CHECKING:
    import torch

    from dlx.store import Store

_ASK_TORCH = ("import json, torch; print(json.dumps([torch.cuda.get_device_name(i) "
              "for i in range(torch.cuda.device_count())]))")


def resolve_device(spec: str) -> torch.device:
    """auto -> the first visible GPU, else the CPU; cuda:N is checked against what exists.
    Called where a run computes, so torch is imported here."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if os.environ.get("DLX_ASSIGNED_GPU"):
            # A worker gave this job one GPU and made it the only visible one.
            return torch.device("cuda:0")
        if not torch.cuda.is_available():
            raise DlxError(f"device: {spec!r} was asked for but no CUDA GPU is visible; use auto or cpu",
                           field="device")
        index = int(spec.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DlxError(f"device: {spec!r} does not exist; this machine has "
                           f"{torch.cuda.device_count()} GPU(s)", field="device")
    return torch.device(spec)


@functools.cache
def gpu_names() -> tuple[str, ...]:
    """The CUDA GPUs this process can use, by name; () without nvidia-smi or when asking fails."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        done = subprocess.run([sys.executable, "-c", _ASK_TORCH], capture_output=True, text=True, timeout=120)
        return tuple(json.loads(done.stdout.strip().splitlines()[-1])) if done.returncode == 0 else ()
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return ()


def gpu_count() -> int:
    return len(gpu_names())


def describe() -> str:
    """A one-line description for the sidebar: the CPU, or each GPU's name."""
    names = gpu_names()
    if names:
        return ", ".join(f"cuda:{i} {name}" for i, name in enumerate(names))
    return f"CPU ({os.cpu_count()} cores)"


def gpu_index(spec: str) -> int | None:
    """cuda:N -> N, cuda -> 0, anything else (auto, cpu) -> None."""
    return int(spec.partition(":")[2] or 0) if spec.startswith("cuda") else None


def check_launchable(spec: str, store: Store) -> None:
    """Refuse a GPU that neither this machine nor any running worker has: such a job would wait
    in the queue forever, since no worker ever claims it."""
    index = gpu_index(spec)
    if index is None or index < gpu_count():
        return
    if any(int(w.info.get("gpus", 0)) > index for w in store.workers.alive()):
        return
    have = gpu_count()
    choices = ", ".join(["auto", "cpu", *(f"cuda:{i}" for i in range(have))])
    raise DlxError(f"device: {spec!r} does not exist here: this machine has {have} GPU(s) and no running "
                   f"worker has more; choose {choices}", field="device")

