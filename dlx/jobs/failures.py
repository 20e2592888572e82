"""Why a job ended badly, as the user should read it (torch-free: the pages and the CLI show it)."""
from __future__ import annotations

from pathlib import Path

from db.models import Job
from dlx import settings
from dlx.errors import DlxError


def failure_reason(job: Job) -> str:
    """Why a job failed, in the user's words when it said so: the "error: ..." line of its log."""
    path = _readable_log(job.log_path)
    if path is not None:
        lines = path.read_text(errors="replace").splitlines()
        said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        if said:
            return said[-1]
    return job.error or "no reason was recorded"


def _readable_log(stored: str | None) -> Path | None:
    """The job's log when it exists inside the data directory; a path leading out is never read."""
    try:
        path = settings.stored_path(stored) if stored else None
    except DlxError:
        return None
    return path if path is not None and path.exists() else None
