"""The run API scripts and the training loop write through: `start_run`, `Run` (buffered, batched,
heartbeated) and `logged_values`' checks on what is logged."""
from dlx.tracking.run import Cancelled, Run, start_run

__all__ = ["Cancelled", "Run", "start_run"]
