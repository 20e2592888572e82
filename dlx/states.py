"""Run states, the range of a metric's step, and the owner string a process writes on the runs it starts:
imported by all, importing nothing of dlx."""
from __future__ import annotations

import os
import socket

ACTIVE_STATES = ("queued", "running")  # the only states a status may be changed from
FINAL_STATES = ("succeeded", "failed", "cancelled", "pruned")  # pruned: a search trial its pruner stopped
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1  # a signed 64-bit INTEGER column
OWNER = f"{os.getpid()}@{socket.gethostname()}"
