"""A Ray head, and nodes joining it, on loopback for tests and benchmarks (`ray start --block`, each in
its own process group, so that a test can kill a node as a machine dies: every process at once).

Stopped by signal, not `ray stop` (which ends every Ray process of this user on the machine).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.processes import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(args: list[str], temp: Path, log: Path | None) -> subprocess.Popen:
    """`ray start <args> --block` with this repo importable by the tasks, in a new process group."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        # each node its own dashboard agent port: the fixed default collides between nodes on one machine
        return subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--block", *args,
                                 "--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats",
                                 f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={temp}"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log:
            out.close()  # the child holds its own copy


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the `ray start` process, then SIGKILL whatever of its process group is left."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def ray_head(temp: Path, cpus: int = 2, log: Path | None = None) -> Iterator[str]:
    """A head with `cpus` CPUs for jobs and no GPU, listening on loopback; yields its address."""
    port = free_port()
    head = _start(["--head", f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false"], temp, log)
    try:
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0 or head.poll() is not None

        wait_for(listening, timeout=120, message="the Ray head to listen")
        assert head.poll() is None, f"ray start exited with {head.returncode}"
        yield f"127.0.0.1:{port}"
    finally:
        stop(head)


def ray_node(address: str, temp: Path, cpus: int, log: Path | None = None) -> subprocess.Popen:
    """A node with `cpus` CPUs joining the head at `address`; `stop` it, or `os.killpg` it to lose it."""
    return _start([f"--address={address}", f"--num-cpus={cpus}"], temp, log)
