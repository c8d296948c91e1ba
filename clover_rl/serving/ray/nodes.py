"""Fleet membership: which Ray nodes carry GPUs, their node agents, heartbeats, loss and rejoin.

A node belongs to the fleet when it offers GPUs: the ``GPU`` resource on ``--device cuda``, the
:data:`~clover_rl.serving.ray.EMULATED_GPU_RESOURCE` resource (``ray start --resources
'{"clover_gpu": 2}'``) on ``--device cpu``. Its name is its ``clover-node`` Ray label, else its
hostname, so a node that comes back (a new raylet, a new node id) takes its old GPUs back.

:class:`FleetMonitor` pings every node agent each ``period_s``: a node whose agent misses
``misses`` heartbeats in a row (no answer within ``ping_timeout_s``, or the actor dead), or that
Ray reports dead, is *lost* (``on_lost``); a fleet node that Ray lists alive and whose new agent
answers is *joined* (``on_joined``) -- at start, and again when a lost node returns. Detection
takes at most ``misses x period_s + ping_timeout_s`` (4 s by default), within one control window.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clover_rl.serving.ray import EMULATED_GPU_RESOURCE, NODE_LABEL
from clover_rl.serving.ray.actors import NodeAgent
from clover_rl.serving.ray.handle import one_line

log = logging.getLogger("clover_rl.serving.ray")


@dataclass
class FleetNode:
    """One fleet node as the driver sees it."""

    name: str
    node_id: str
    n_gpus: int
    agent: Any = None  # the NodeAgent actor handle
    alive: bool = True
    misses: int = 0
    make_before_break: bool = True
    since: float = field(default_factory=time.time)


def fleet_nodes(device: str) -> dict[str, tuple[str, int]]:
    """Alive Ray nodes that offer GPUs for ``device``: ``{name: (node_id, gpu count)}``."""
    import ray

    key = EMULATED_GPU_RESOURCE if device == "cpu" else "GPU"
    found: list[tuple[str, str, int]] = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        count = int((n.get("Resources") or {}).get(key, 0))
        if count <= 0:
            continue
        labels = n.get("Labels") or {}
        name = str(labels.get(NODE_LABEL) or n.get("NodeManagerHostname") or n["NodeID"][:12])
        found.append((name, n["NodeID"], count))
    names = [f[0] for f in found]
    out: dict[str, tuple[str, int]] = {}
    for name, nid, count in sorted(found):
        out[name if names.count(name) == 1 else f"{name}-{nid[:6]}"] = (nid, count)
    return out


class FleetMonitor:
    """Discovers fleet nodes, keeps one :class:`NodeAgent` on each, and reports loss / rejoin."""

    def __init__(self, device: str, gpu_name: str, *, mig: bool = True,
                 on_lost: Callable[[FleetNode], None] | None = None,
                 on_joined: Callable[[FleetNode], None] | None = None,
                 period_s: float = 1.0, misses: int = 2, ping_timeout_s: float = 2.0,
                 agent_timeout_s: float = 60.0, rejoin_every_s: float = 5.0,
                 agent_options: dict[str, Any] | None = None) -> None:
        self.device = device
        self.gpu_name = gpu_name
        self.mig = mig
        self.on_lost = on_lost
        self.on_joined = on_joined
        self.period_s = period_s
        self.misses = misses
        self.ping_timeout_s = ping_timeout_s
        self.agent_timeout_s = agent_timeout_s
        self.rejoin_every_s = rejoin_every_s
        self.agent_options = dict(agent_options or {})  # NodeAgent keywords: mig_backend, operator
        self.nodes: dict[str, FleetNode] = {}
        self.events: list[tuple[float, str, str]] = []  # (time, "lost"|"joined", node name)
        self._tried: dict[str, float] = {}
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ agents
    def _make_agent(self, node_id: str, n_gpus: int) -> tuple[Any, bool]:
        """A new agent pinned to ``node_id``; (handle, make_before_break) once it answers."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cls = ray.remote(NodeAgent)
        agent = cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False), num_cpus=0,
                            max_restarts=0, max_task_retries=0).remote(self.device, self.gpu_name, n_gpus, self.mig,
                                                                      **self.agent_options)
        try:
            mbb = bool(ray.get(agent.make_before_break.remote(), timeout=self.agent_timeout_s))
        except Exception:
            ray.kill(agent, no_restart=True)
            raise
        return agent, mbb

    def discover(self) -> list[FleetNode]:
        """Join every fleet node alive now (blocking); the nodes, sorted by name."""
        self._check_joins(force=True)
        return [self.nodes[k] for k in sorted(self.nodes)]

    # ------------------------------------------------------------------ heartbeat
    def start(self) -> FleetMonitor:
        self._thread = threading.Thread(target=self._loop, name="clover-fleet-monitor", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Check now (a slice actor just died: its node may be gone)."""
        self._poke.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(self.period_s)
            self._poke.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception as e:  # Ray shutting down, GCS unreachable: try again next period
                log.warning("fleet monitor: %s", one_line(e))

    def check(self) -> set[str]:
        """One round: heartbeats (loss), then joins; the names of the nodes that answered."""
        import ray

        healthy: set[str] = set()
        with self._lock:
            alive = {nid for nid, _ in fleet_nodes(self.device).values()}
            live = [n for n in self.nodes.values() if n.alive]
            refs = {n.name: n.agent.ping.remote() for n in live}
            ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=self.ping_timeout_s) if refs \
                else ([], [])
            for n in live:
                ok = n.node_id in alive and refs[n.name] in ready
                if ok:
                    try:
                        ray.get(refs[n.name], timeout=0)
                    except Exception:
                        ok = False
                if ok:
                    healthy.add(n.name)
                n.misses = 0 if ok else n.misses + 1
                if n.misses >= self.misses or n.node_id not in alive:
                    self._lose(n, "Ray reports the node dead" if n.node_id not in alive
                               else f"{n.misses} heartbeats missed")
        self._check_joins()
        return healthy

    def _lose(self, n: FleetNode, why: str) -> None:
        import ray

        n.alive = False
        n.since = time.time()
        self.events.append((n.since, "lost", n.name))
        log.warning("node %s lost (%s): its %d GPU(s) are out of the fleet", n.name, why, n.n_gpus)
        try:
            ray.kill(n.agent, no_restart=True)
        except Exception:
            pass
        if self.on_lost is not None:
            self.on_lost(n)

    def _check_joins(self, force: bool = False) -> None:
        now = time.time()
        for name, (nid, count) in fleet_nodes(self.device).items():
            with self._lock:
                known = self.nodes.get(name)
                if known is not None and known.alive:
                    continue
                if not force and now - self._tried.get(name, -1e9) < self.rejoin_every_s:
                    continue
                self._tried[name] = now
            try:
                agent, mbb = self._make_agent(nid, count)
            except Exception as e:
                log.warning("node %s: no node agent (%s); will retry", name, one_line(e))
                continue
            with self._lock:
                node = FleetNode(name, nid, count, agent, True, 0, mbb)
                self.nodes[name] = node
                self.events.append((node.since, "joined", name))
            if known is not None:
                log.warning("node %s rejoined the fleet (%d GPU(s))", name, count)
            if self.on_joined is not None:
                self.on_joined(node)

    def close(self) -> None:
        import ray

        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(self.ping_timeout_s + 5.0)
        for n in self.nodes.values():
            if n.alive:
                try:
                    ray.kill(n.agent, no_restart=True)
                except Exception:
                    pass
