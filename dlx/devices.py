"""Which device a run uses, and what this machine has."""
from __future__ import annotations

import os

import torch

from dlx.errors import DlxError


def resolve_device(spec: str) -> torch.device:
    """auto -> the first visible GPU, else the CPU; cuda:N is checked against what exists."""
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


def describe() -> str:
    """A one-line description for the sidebar: the CPU, or each GPU's name."""
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return ", ".join(f"cuda:{i} {name}" for i, name in enumerate(names))
    return f"CPU ({torch.get_num_threads()} threads)"
