"""What the live workers offer, read from the heartbeats they store (`workers.info`).

The app's sidebar shows it without importing ray or torch: each worker records its executor,
its nodes (a Ray worker: the cluster's) and its GPUs at every heartbeat.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlx.store import Store


@dataclass
class Capacity:
    workers: int
    executors: list[str]  # the live workers' executors, e.g. ["local"] or ["ray"]
    nodes: int
    gpus: int


def capacity(store: Store) -> Capacity:
    """Workers, nodes and GPUs available now.

    Local workers on one machine share its GPUs, so they count once per host (worker ids are
    `host:pid`); Ray workers on a cluster report the same cluster, counted once (the largest report).
    """
    workers = store.workers.alive()
    local_hosts: dict[str, int] = {}
    cluster_nodes = cluster_gpus = 0
    for worker in workers:
        info = worker.info or {}
        if info.get("executor", "local") == "local":
            host = worker.id.rpartition(":")[0]
            local_hosts[host] = max(local_hosts.get(host, 0), info.get("gpus", 0))
        else:
            cluster_nodes = max(cluster_nodes, info.get("nodes", 1))
            cluster_gpus = max(cluster_gpus, info.get("gpus", 0))
    executors = sorted({(w.info or {}).get("executor", "local") for w in workers})
    return Capacity(len(workers), executors, len(local_hosts) + cluster_nodes,
                    sum(local_hosts.values()) + cluster_gpus)


def describe(current: Capacity) -> str:
    """One line for the sidebar, e.g. `ray · 3 nodes · 4 GPUs`; empty when no worker is alive."""
    if not current.workers:
        return ""
    return " · ".join([", ".join(current.executors), _count(current.nodes, "node"), _count(current.gpus, "GPU")])


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
