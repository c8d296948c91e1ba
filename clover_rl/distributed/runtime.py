"""Joining or starting a Ray cluster (``--ray auto|ADDRESS``), and a pool of long-lived workers.

``auto`` joins the cluster that ``RAY_ADDRESS`` names and otherwise starts a private local one
with this machine's CPUs (never guessing from leftover session files); any other value is a
cluster address (``HOST:6379`` for a cluster started with ``ray start``, or ``ray://HOST:10001``).
On a cluster of several machines the workers import ``clover_rl`` there: install the same
version on every node.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from clover_rl.errors import ConfigError

EXTRA_HINT = "pip install 'clover-rl[ray]'"


def require_ray() -> Any:
    """The ``ray`` module; ConfigError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs the optional 'ray' extra, which is not installed ({EXTRA_HINT})") from None
    return ray


@contextmanager
def connected(address: str = "auto", *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, initialised for the ``with`` block: a cluster already initialised in this process is
    used as is (and left running); otherwise ``address`` is joined (``auto``: see the module
    docstring) and disconnected at the end. ``num_cpus`` caps a cluster started here."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if not address or not str(address).strip():
        raise ConfigError("--ray: expected 'auto' or a cluster address (HOST:6379 or ray://HOST:10001)")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    env_address = os.environ.get("RAY_ADDRESS", "").strip()
    if str(address) != "auto" or env_address:
        kwargs["address"] = str(address) if str(address) != "auto" else env_address
    else:
        kwargs["address"] = "local"  # a new local cluster, even if another one runs here
        if num_cpus is not None:
            kwargs["num_cpus"] = int(num_cpus)
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"--ray {address}: cannot join the Ray cluster ({str(e).splitlines()[0]})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray: Any) -> int:
    """CPUs the connected cluster offers (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class _Worker:
    """A long-lived worker process: caches built in it (steady states, tables) serve every call."""

    def call(self, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
        return fn(*args)


def map_unordered(ray: Any, fn: Callable[..., Any], items: Iterable[Sequence[Any]], workers: int) -> Iterator[Any]:
    """``fn(*item)`` for every item on ``workers`` Ray actors (one CPU each), yielded as they finish.
    Items are handed out in order, so items sharing a cache should be adjacent."""
    from ray.util import ActorPool

    actor = ray.remote(num_cpus=1)(_Worker)
    pool = ActorPool([actor.remote() for _ in range(max(1, int(workers)))])
    yield from pool.map_unordered(lambda a, item: a.call.remote(fn, tuple(item)), list(items))


def run_all(address: str, fn: Callable[..., Any], items: Sequence[Sequence[Any]], workers: int | None = None) -> list[Any]:
    """``fn(*item)`` for every item on the Ray cluster at ``address`` (:func:`connected`), on
    ``workers`` one-CPU actors (default: the cluster's CPUs, at most one per item); the results
    in completion order."""
    with connected(address) as ray:
        n = min(len(items), workers or cluster_cpus(ray))
        return list(map_unordered(ray, fn, items, max(1, n)))
