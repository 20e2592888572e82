"""A job's own process: `python -m dlx.jobs.entry <job_id>`. A crash here never reaches the worker."""
from __future__ import annotations

import sys

import dlx.explain.influence  # noqa: F401  (registers the "influence" job kind)
import dlx.explain.jobs  # noqa: F401  (registers the "explain" and "explain_text" job kinds)
import dlx.explain.over_training  # noqa: F401  (registers the "explain_over_training" job kind)
import dlx.search.driver  # noqa: F401  (registers the "search" job kind)
from dlx.data import user_sets
from dlx.errors import DlxError
from dlx.jobs import lifeline
from dlx.jobs.kinds import JOB_KINDS
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
        JOB_KINDS[job.kind](store, job)
    except DlxError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except Cancelled:
        print("cancelled", file=sys.stderr, flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
