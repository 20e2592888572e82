"""A job process ends with the worker that started it, however the worker ends (even SIGKILL).

Without this a killed worker left its job running in its own session: it kept logging and later
overwrote the `failed` its run had been given by the stale reaper. The executor names itself in
`DLX_LIFELINE_PID` when it starts a child; the child calls `bind_to_parent()` first thing. On Linux
the kernel sends the child SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG); everywhere, a
watchdog thread notices the parent is gone (the child was re-parented) and kills the child's
process group, which also takes any data loader processes with it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

ENV = "DLX_LIFELINE_PID"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_INTERVAL = 0.5  # seconds between the watchdog's looks at the parent pid


def bind_to_parent(use_prctl: bool = True) -> int | None:
    """End this process when the parent named in `DLX_LIFELINE_PID` ends; returns that pid (None if unset).

    The variable is removed so that processes this one starts do not bind to the worker too.
    `use_prctl=False` leaves only the portable watchdog (what runs where prctl does not exist).
    """
    value = os.environ.pop(ENV, "")
    if not value.isdigit():
        return None
    parent = int(value)
    if use_prctl and sys.platform.startswith("linux"):
        _set_parent_death_signal(signal.SIGKILL)
    # The parent may have died before the line above ran: the signal is then never sent.
    if os.getppid() != parent:
        _end_own_group(parent)
    threading.Thread(target=_watch, args=(parent,), name="dlx-lifeline", daemon=True).start()
    return parent


def _set_parent_death_signal(sig: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        print(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}; relying on the watchdog",
              file=sys.stderr, flush=True)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL)
    _end_own_group(parent)


def _end_own_group(parent: int) -> None:
    """SIGKILL this process's group if it leads one (a job started in its own session), else itself."""
    print(f"pid {os.getpid()}: its worker (pid {parent}) is gone; ending",
          file=sys.stderr, flush=True)
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
