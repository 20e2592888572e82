"""A job's own process: `python -m dlx.jobs.entry <job_id>`. A crash here never reaches the worker."""
from __future__ import annotations

import sys

from dlx.data import user_sets
from dlx.errors import DlxError
from dlx.jobs import lifeline
from dlx.jobs.kinds import job_function
from dlx.store import default_store
from dlx.tracking import Cancelled


def main(job_id: int) -> int:
    lifeline.bind_to_parent()  # started by a worker: end with it (a no-op in a standby, bound already)
    store = default_store()  # the worker passes DLX_DATABASE_URL: its own store
    user_sets.list_in_registry(default_store)  # the job's data set may be a user's, kept in this store
    job = store.queue.get_job(job_id)
    if job is None:
        print(f"job {job_id} does not exist", file=sys.stderr)
        return 2
    try:
        job_function(job.kind)(store, job)  # imports only what this kind needs (captum: explain jobs)
    except DlxError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except Cancelled:
        print("cancelled", file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
