"""A job's own process: `python -m dlx.jobs.entry <job_id>`. A crash here never reaches the worker."""
from __future__ import annotations

import sys

from dlx.errors import DlxError
from dlx.jobs.kinds import JOB_KINDS
from dlx.jobs.queue import get_job


def main(job_id: int) -> int:
    job = get_job(job_id)
    if job is None:
        print(f"job {job_id} does not exist", file=sys.stderr)
        return 2
    _load_plugins()
    try:
        JOB_KINDS[job.kind](job)
    except DlxError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


def _load_plugins() -> None:
    """Import modules that register job kinds beyond training (explanations)."""
    import importlib

    for module in ("dlx.explain.jobs",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
