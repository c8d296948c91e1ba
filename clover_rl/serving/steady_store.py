"""A persistent store of computed steady states, so a fresh process starts warm.

A steady state costs one 50,000-request simulation per (configuration shape, rate grid point):
~1 ms each, paid again by every new process (each vectorised-env worker, each training run,
each evaluation) for every configuration it meets. This store keeps them in one SQLite file
(``steady-v<VERSION>.sqlite`` under :func:`cache_dir`), shared by concurrent processes (WAL
journal), read in bulk per (family, grid point) on the first miss and written in batches.

What is stored is exactly what :func:`clover_rl.serving.steady._steady_at` computes (the
figures are deterministic: seeded common random numbers per grid point), keyed by a digest of
everything they depend on: the servers' shape (service-time quantiles, active power,
accuracy, variants, idle power, overheads, GPU count), the rate grid point, the timeout, the
request count and the seed, plus :data:`STORE_VERSION` (bump it when the simulation's
semantics change). A loaded entry is therefore identical to a recomputed one
(``tests/serving/test_steady_store.py``).

A row is ~1.5 kB (the latency quantiles dominate): a full table of 1,282 configurations is
~2 MB per load level; delete the file to reclaim the space (it is rebuilt on use).
``CLOVER_RL_CACHE_DIR`` moves the folder; ``CLOVER_RL_STEADY_STORE=0`` turns the store off.
Any failure to open, read or write it (read-only disk, a corrupt file) turns it off for the
process with one logged line: the store is never needed for correct results.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any

STORE_VERSION = 2  # 2: shape digests are digests of per-row digests (cheaper to compute)
_FLUSH_EVERY = 256  # entries
_FLUSH_AFTER_S = 5.0
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$CLOVER_RL_CACHE_DIR``, else ``$XDG_CACHE_HOME/clover-rl``, else ``~/.cache/clover-rl``."""
    env = os.environ.get("CLOVER_RL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "clover-rl"


def digest(obj: Any) -> str:
    """A stable digest of a tuple of numbers and strings (``repr`` is exact for floats)."""
    return hashlib.sha1(repr(obj).encode()).hexdigest()[:32]


class SteadyStore:
    """Steady-state rows by (family, grid index, shape digest); values are pickled tuples."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._loaded: dict[tuple[str, int], dict[str, bytes]] = {}
        self._pending: list[tuple[str, int, str, bytes]] = []
        self._pending_pid = os.getpid()
        self._last_flush = time.monotonic()
        self.disabled = os.environ.get("CLOVER_RL_STEADY_STORE", "1").strip().lower() in ("0", "false", "no", "off")

    @property
    def path(self) -> Path:
        return self._path or cache_dir() / f"steady-v{STORE_VERSION}.sqlite"

    def _off(self, why: BaseException) -> None:
        _log.warning("steady-state store %s turned off for this process: %s", self.path, why)
        self.disabled = True
        self._pending.clear()

    def _connect(self) -> sqlite3.Connection | None:
        if self.disabled:
            return None
        if self._conn is None or self._pid != os.getpid():  # never share a connection across fork
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("CREATE TABLE IF NOT EXISTS steady (family TEXT, grid INTEGER, shape TEXT, "
                             "value BLOB, PRIMARY KEY (family, grid, shape)) WITHOUT ROWID")
            except (sqlite3.Error, OSError) as e:
                self._off(e)
                return None
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get(self, family: str, grid: int, shape: str) -> Any | None:
        """The stored value, or None (the first call per (family, grid) reads its rows in bulk)."""
        rows = self._loaded.get((family, grid))
        if rows is None:
            conn = self._connect()
            if conn is None:
                return None
            try:
                cur = conn.execute("SELECT shape, value FROM steady WHERE family = ? AND grid = ?", (family, grid))
                rows = self._loaded[(family, grid)] = dict(cur.fetchall())
            except sqlite3.Error as e:
                self._off(e)
                return None
        blob = rows.get(shape)
        if blob is None:
            return None
        try:
            return pickle.loads(blob)
        except Exception as e:  # noqa: BLE001 - a damaged row is only a miss
            _log.warning("steady-state store: unreadable row skipped (%s)", e)
            return None

    def put(self, family: str, grid: int, shape: str, value: Any) -> None:
        """Queue a row; written with the next batch (every few hundred rows, seconds, or at exit)."""
        if self.disabled:
            return
        if self._pending_pid != os.getpid():  # rows queued before a fork are the parent's to write
            self._pending, self._pending_pid = [], os.getpid()
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self._loaded.setdefault((family, grid), {})[shape] = blob
        self._pending.append((family, grid, shape, blob))
        if len(self._pending) >= _FLUSH_EVERY or time.monotonic() - self._last_flush > _FLUSH_AFTER_S:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows (``INSERT OR IGNORE``: concurrent writers of a row agree)."""
        self._last_flush = time.monotonic()
        if not self._pending or self._pending_pid != os.getpid():
            return
        conn = self._connect()
        if conn is None:
            return
        rows, self._pending = self._pending, []
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO steady VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._off(e)

    def forget_loaded(self) -> None:
        """Drop the rows read into memory (tests; another process may have added rows)."""
        self._loaded.clear()


STORE = SteadyStore()
atexit.register(STORE.flush)


def stored_rows(store: SteadyStore | None = None) -> int:
    """Rows in the store's file (0 when it is off or unreadable)."""
    store = store or STORE
    store.flush()
    conn = store._connect()
    if conn is None:
        return 0
    try:
        return int(conn.execute("SELECT COUNT(*) FROM steady").fetchone()[0])
    except sqlite3.Error:
        return 0
