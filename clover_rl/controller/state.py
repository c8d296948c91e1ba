"""Controller state on disk: what a restarted controller needs to resume without disruption.

``--state DIR`` holds
- ``state.json``: the configuration being served, the last carbon reading, the policy spec,
  counters, the SLA guard, the interval in progress and any decision still being applied.
  Rewritten atomically (temp file in the same folder, fsync, ``os.replace``), so a crash at
  any instant leaves either the old or the new file, never a torn one.
- ``decisions.jsonl``: one JSON object per event (decision, interval, guard, rollback, ...),
  appended and fsynced; a torn last line (crash mid-write) is skipped by readers.
- ``lock``: an advisory ``flock`` so two controllers never drive one deployment (released by
  the kernel when the holder dies, so a killed controller never blocks its successor).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from clover_rl.errors import ConfigError

STATE_FILE = "state.json"
LOG_FILE = "decisions.jsonl"
LOCK_FILE = "lock"
SCHEMA_VERSION = 2
FORMAT = f"clover-rl/controller-state/v{SCHEMA_VERSION}"
#: Earlier formats that load unchanged (v1 kept the same fields as untyped JSON objects).
READABLE_FORMATS = ("clover-rl/controller-state/v1", FORMAT)

COUNTERS = ("intervals", "decisions", "reconfigurations", "failed_reconfigurations", "rollbacks",
            "guard_triggers", "guard_releases", "stale_readings", "carbon_errors", "refused_actions",
            "policy_errors", "restarts", "learner_updates", "learner_rollbacks")


@dataclass
class CarbonSnapshot:
    """The last carbon reading (g/kWh, without PUE) and where it came from."""

    value: float
    time: str | None = None  # ISO 8601
    source: str = ""
    stale: bool = False
    forecast: list[float] = field(default_factory=list)
    message: str = ""
    read_at: float = 0.0  # epoch s


@dataclass
class PendingChange:
    """A reconfiguration started but not confirmed (a restart re-applies it)."""

    action: int
    config: str = ""
    previous: int | None = None
    since: float = 0.0
    why: str = ""


@dataclass
class IntervalRecord:
    """The interval in progress and its decision."""

    index: int
    started_at: float
    ends_at: float
    ci: float | None = None
    stale: bool = False
    forecast: list[float] = field(default_factory=list)
    action: int | None = None  # the configuration served
    config: str | None = None
    decided: int | None = None
    policy_action: int | None = None
    source: str | None = None  # policy | guard | refused | fallback
    refused: bool = False
    reconfigurations: int = 0
    partial_logged: bool = False


@dataclass
class LastInterval:
    """The previous interval's feedback for the next observation, and the measured rate."""

    p95_over_sla: float | None = None
    accuracy_over_base: float | None = None
    energy_over_base: float | None = None
    rate_rps: float | None = None
    prev_rate_rps: float | None = None  # the interval before's rate: the observation's load trend


@dataclass
class BudgetLedger:
    """A carbon-budget objective's spending: the window (interval index // window length, from
    the deployment's first interval) and the grams of CO2 spent in it so far."""

    window: int
    spent_g: float


def _decode(cls: type, data: Any, where: str) -> Any:
    """A record from its JSON object: unknown keys ignored, a missing required one or a
    non-object named in one line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


@dataclass
class ControllerState:
    """Everything the loop must remember across restarts; one JSON codec (:meth:`to_dict`,
    :meth:`from_dict`) with a schema version (``format``)."""

    scenario: str
    catalog_signature: str
    policy: str
    config_index: int | None = None  # the configuration being served
    config: str | None = None  # its label (human-readable and checked on resume)
    carbon: CarbonSnapshot | None = None
    counters: dict[str, int] = field(default_factory=lambda: {k: 0 for k in COUNTERS})
    guard: dict[str, Any] = field(default_factory=dict)  # SlaGuard.state()
    pending: PendingChange | None = None
    interval: IntervalRecord | None = None
    last: LastInterval = field(default_factory=LastInterval)
    quarantine: dict[str, int] = field(default_factory=dict)  # action -> last interval masked
    learner: dict[str, Any] | None = None  # OnlineLearner.state()
    budget: BudgetLedger | None = None  # a budgeted objective's window spending
    dry_run: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @staticmethod
    def from_dict(d: dict[str, Any], path: Path) -> ControllerState:
        if not isinstance(d, dict) or d.get("format") not in READABLE_FORMATS:
            raise ConfigError(f"{path}: not a clover-rl controller state (expected format {FORMAT})")
        for req in ("scenario", "catalog_signature", "policy"):
            if req not in d:
                raise ConfigError(f"{path}: missing field {req!r}")
        records = {"carbon": CarbonSnapshot, "pending": PendingChange, "interval": IntervalRecord,
                   "budget": BudgetLedger}
        data = {k: v for k, v in d.items() if k in {f.name for f in fields(ControllerState)}}
        for key, cls in records.items():
            if data.get(key) is not None:
                data[key] = _decode(cls, data[key], f"{path}: {key}")
        data["last"] = _decode(LastInterval, data.get("last") or {}, f"{path}: last")
        st = _decode(ControllerState, data, str(path))
        st.counters = {**{k: 0 for k in COUNTERS}, **{k: int(v) for k, v in (st.counters or {}).items()}}
        return st


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (JSON has neither), numpy scalars become floats."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new content, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class StateStore:
    """The ``--state DIR`` folder: state file, decision log, lock, TensorBoard and checkpoints."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).expanduser()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--state {self.dir}: cannot create ({e.strerror})") from None
        if not os.access(self.dir, os.W_OK):
            raise ConfigError(f"--state {self.dir}: not writable")
        self._lock_fd: int | None = None

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def tb_dir(self) -> Path:
        return self.dir / "tb"

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    # ------------------------------------------------------------------ lock
    def lock(self) -> None:
        """Take the folder's lock, or say who holds it."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(f"--state {self.dir}: in use by another controller (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    # ------------------------------------------------------------------ state
    def exists(self) -> bool:
        return self.state_path.exists()

    def load(self) -> ControllerState | None:
        path = self.state_path
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: unreadable controller state ({e}); move it away to start afresh") from None
        return ControllerState.from_dict(data, path)

    def save(self, state: ControllerState) -> None:
        atomic_write_text(self.state_path, json.dumps(_clean(state.to_dict()), indent=1, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ log
    def append(self, record: dict[str, Any]) -> None:
        """Append one event to the decision log (durable before returning)."""
        line = json.dumps(_clean(record), sort_keys=False, separators=(",", ":")) + "\n"
        with open(self.log_path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        yield from read_log(self.log_path, kind)


def read_log(path: str | Path, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """Events of a decision log, skipping torn or foreign lines."""
    path = Path(path)
    if not path.exists():
        return
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and (kind is None or rec.get("kind") == kind):
                yield rec
