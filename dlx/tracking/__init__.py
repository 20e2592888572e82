"""The run API scripts and the training loop write through: `start_run`, `Run` (buffered, batched,
heartbeated), `logged_values`' checks on what is logged, and `checkpoint_writer` (torch; imported
only by the loop)."""
from dlx.tracking.run import Cancelled, Run, start_run

__all__ = ["Cancelled", "Run", "start_run"]
