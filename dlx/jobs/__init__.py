"""Jobs: the queue, the worker that runs them, and the executors it runs them on."""
from dlx.jobs.supervisor import ensure_worker, status

__all__ = ["ensure_worker", "status"]
