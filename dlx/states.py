"""Run states and the owner string a process writes on the runs it starts: imported by all, importing nothing of dlx."""
from __future__ import annotations

import os
import socket

ACTIVE_STATES = ("queued", "running")  # the only states a status may be changed from
OWNER = f"{os.getpid()}@{socket.gethostname()}"
