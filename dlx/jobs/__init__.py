"""Jobs: the queue, the worker that runs them, and the executors it runs them on."""
from dlx.jobs.queue import cancel_run, submit, submit_job
from dlx.jobs.supervisor import ensure_worker, status

__all__ = ["cancel_run", "ensure_worker", "status", "submit", "submit_job"]
