"""`dlx ui` as a user starts it: the process, its first line, Ctrl+C, its children, the addresses it listens on."""
from __future__ import annotations

import os
import subprocess
import sys


def listening_addresses(port: int) -> set[str]:
    """The local addresses on which some process listens on TCP `port`, read from the kernel's tables."""
    import ipaddress

    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    # the kernel writes each 32-bit word in host (little-endian) order
                    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
                    found.add(str(ipaddress.ip_address(packed)))
    return found


STARTED_UIS: list[subprocess.Popen] = []  # stopped after each test, also one that failed midway


def start_ui(*args: str, env: dict[str, str | None] | None = None) -> subprocess.Popen:
    """`dlx ui` as a terminal starts it: its own process group, so a Ctrl-C can go to the group.

    `env` adds variables to this process's environment; a None value removes one.
    """
    merged = {key: value for key, value in {**os.environ, **(env or {})}.items() if value is not None}
    process = subprocess.Popen([sys.executable, "-m", "dlx.cli", "ui", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=merged, start_new_session=True)
    STARTED_UIS.append(process)
    return process


def first_line(process: subprocess.Popen) -> str:
    line = process.stdout.readline()
    assert line, f"dlx ui ended with {process.wait()}: {process.stderr.read()}"
    return line.strip()


def ctrl_c(process: subprocess.Popen) -> int:
    """What a Ctrl-C in its terminal does: SIGINT to its whole process group (dlx ui and the app)."""
    import signal

    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def running(pid: int) -> bool:
    from dlx.jobs.supervisor import _running

    return _running(pid)


def children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return found
