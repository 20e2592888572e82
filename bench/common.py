"""What every bench shares: a throwaway data directory, the repo on sys.path, and figures printed alike."""
from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup() -> Path:
    """Point DLX_HOME at a fresh temporary folder (before dlx opens a database) and import from the repo.

    The folder is removed when the bench exits.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    home = Path(tempfile.mkdtemp(prefix="dlx-bench-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["DLX_HOME"] = str(home)
    os.environ.pop("DLX_DATABASE_URL", None)
    return home


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.python_implementation()} {platform.python_version()}, torch {torch.__version__}, "
            f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, {device}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(title: str, rows: list[tuple[str, str]]) -> None:
    """Print a titled block of `name: figure` lines, aligned."""
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    for name, figure in rows:
        print(f"  {name:<{width}}  {figure}")
