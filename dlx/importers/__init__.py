"""History from other trackers brought into dlx's store (`dlx import mlflow URI`, `dlx import tensorboard
LOGDIR`): each reader yields `ForeignRun`s, `run_import` writes the new ones (idempotent) with a progress bar."""
