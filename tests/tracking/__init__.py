"""The run API: logging, steps, checkpoints written in the background, scripts' own runs."""
