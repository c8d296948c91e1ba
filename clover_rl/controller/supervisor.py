"""Fault isolation between serving and control: the control loop runs in its own process.

``clover-rl deploy`` keeps the serving plane (KServe front end, worker pool, meters) in the
main process and runs the controller in a child process that reaches the plane through a
small RPC (:class:`RemotePlane` <-> :class:`PlaneHost`). If the controller crashes or is
killed, requests keep being served by the configuration in place; the :class:`Supervisor`
starts a new controller, which resumes from ``--state`` (same configuration, same interval
schedule, no needless reconfiguration). A configuration error in the controller (bad policy
file, mismatched state folder) is not retried: the supervisor stops with its message.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from typing import Any

from clover_rl.controller.clock import Clock, SystemClock
from clover_rl.controller.loop import ControllerOptions
from clover_rl.errors import BackendError, CheckpointError, CloverError, ConfigError, TraceError
from clover_rl.mig.config import Configuration
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.metrics import IntervalMetrics

log = logging.getLogger("clover_rl.controller")

_ERRORS: dict[str, type[CloverError]] = {"ConfigError": ConfigError, "CheckpointError": CheckpointError,
                                         "TraceError": TraceError, "BackendError": BackendError}


def echo_flush(text: str) -> None:
    """Console lines from the controller process, unbuffered (picklable)."""
    print(text, flush=True)


# --------------------------------------------------------------------------- RPC
class PlaneHost:
    """Serves one plane to one controller process over a connection (a thread per connection)."""

    METHODS = ("apply", "begin_interval", "measure_window", "interval", "publish")
    ATTRIBUTES = ("configuration", "name", "estimated")

    def __init__(self, plane: Any) -> None:
        self.plane = plane
        self.fatal: str | None = None
        self.fatal_kind = "ConfigError"

    def serve(self, conn: Connection) -> threading.Thread:
        t = threading.Thread(target=self._loop, args=(conn,), name="clover-plane-host", daemon=True)
        t.start()
        return t

    def _loop(self, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg[0] == "fatal":
                self.fatal_kind, self.fatal = msg[1], msg[2]
                continue
            _, name, args, kwargs = msg
            try:
                if name in self.ATTRIBUTES:
                    result = getattr(self.plane, name)
                elif name in self.METHODS:
                    result = getattr(self.plane, name)(*args, **kwargs)
                else:
                    raise ConfigError(f"plane has no remote method {name!r}")
                reply = ("ok", result)
            except CloverError as e:
                reply = ("err", type(e).__name__, str(e))
            except Exception as e:
                reply = ("err", "BackendError", f"{type(e).__name__}: {e}")
            try:
                conn.send(reply)
            except (OSError, EOFError, ValueError):
                return


class RemotePlane:
    """The controller-side proxy of a :class:`PlaneHost` (implements ``ServicePlane``)."""

    def __init__(self, conn: Connection, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self.name = str(self._call("name"))

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                self.conn.send(("call", name, args, kwargs))
                reply = self.conn.recv()
            except (EOFError, OSError) as e:
                raise BackendError(f"lost the serving plane ({type(e).__name__})") from None
        if reply[0] == "ok":
            return reply[1]
        raise _ERRORS.get(reply[1], BackendError)(reply[2])

    @property
    def configuration(self) -> Configuration | None:
        return self._call("configuration")

    @property
    def estimated(self) -> bool:
        return bool(self._call("estimated"))

    def apply(self, configuration: Configuration) -> ReconfigReport:
        return self._call("apply", configuration)

    def begin_interval(self) -> None:
        self._call("begin_interval")

    def window(self, seconds: float, stop: threading.Event | None = None) -> IntervalMetrics:
        self.clock.sleep(seconds, stop)
        return self._call("measure_window")

    def interval(self) -> IntervalMetrics:
        return self._call("interval")

    def publish(self, values: dict[str, Any]) -> None:
        self._call("publish", values)

    def fatal(self, err: CloverError) -> None:
        try:
            self.conn.send(("fatal", type(err).__name__, str(err)))
        except (OSError, EOFError):
            pass

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- controller process
@dataclass
class ControllerSpec:
    """Everything a controller process needs (picklable)."""

    scenario: str
    policy: str
    carbon: str
    state_dir: str
    options: ControllerOptions = field(default_factory=ControllerOptions)
    carbon_start: float | None = None  # epoch s: a replayed trace keeps its clock across restarts
    overrides: dict[str, Any] = field(default_factory=dict)


def make_carbon_source(spec: str, start: float | None = None, clock: Clock | None = None) -> Any:
    """``parse_source`` with a replayed trace anchored at ``start`` and driven by ``clock``."""
    from clover_rl.carbon.providers import parse_source

    kind = spec.strip().split(":", 1)[0].split(",", 1)[0].lower()
    kw: dict[str, Any] = {}
    if kind in ("file", "trace"):
        if start is not None:
            kw["start"] = datetime.fromtimestamp(start, timezone.utc)
        if clock is not None:
            kw["clock"] = clock.now
    return parse_source(spec, **kw)


def controller_main(spec: ControllerSpec, conn: Connection) -> None:
    """Entry point of the controller process."""
    from clover_rl.controller.loop import Controller

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    plane = RemotePlane(conn)
    try:
        carbon = make_carbon_source(spec.carbon, spec.carbon_start)
        ctl = Controller(spec.scenario, spec.policy, plane, carbon, spec.state_dir, spec.options, **spec.overrides)
        ctl.run(stop)
    except (ConfigError, CheckpointError, TraceError) as e:  # the user's to fix: do not retry
        plane.fatal(e)
        print(f"controller: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except BackendError as e:  # a serving fault: the supervisor restarts us (with back-off)
        print(f"controller: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    sys.exit(0)


class Supervisor:
    """Runs :func:`controller_main` in a child process and restarts it when it dies."""

    def __init__(self, spec: ControllerSpec, plane: Any, *, echo: Callable[[str], None] | None = print,
                 backoff_s: tuple[float, float] = (1.0, 30.0), max_fast_failures: int = 5,
                 context: str = "spawn") -> None:
        self.spec = spec
        self.plane = plane
        self.echo = echo or (lambda _s: None)
        self.backoff = backoff_s
        self.max_fast_failures = max_fast_failures
        self.ctx = mp.get_context(context)
        self.proc: Any = None
        self.host = PlaneHost(plane)
        self.restarts = 0
        self._conn: Connection | None = None
        self.deadline: float | None = None
        self._replan: str | None = None  # why the controller was asked to restart (see replan)

    @property
    def controller_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.is_alive() else None

    def _spawn(self) -> None:
        opts = self.spec.options
        if self.deadline is not None:
            opts = replace(opts, duration_s=max(self.deadline - time.time(), 1e-3))
        spec = replace(self.spec, options=opts)
        parent, child = self.ctx.Pipe()
        self.host = PlaneHost(self.plane)
        self._host_thread = self.host.serve(parent)
        self.proc = self.ctx.Process(target=controller_main, args=(spec, child), name="clover-controller", daemon=False)
        self.proc.start()
        child.close()
        self._conn = parent

    def run(self, stop: threading.Event) -> int:
        """Supervise until the controller finishes its duration or ``stop`` is set; restarts."""
        if self.spec.options.duration_s:
            self.deadline = time.time() + self.spec.options.duration_s
        delay = self.backoff[0]
        fast_failures = 0
        self._spawn()
        started = time.time()
        while True:
            while self.proc.is_alive() and not stop.is_set():
                self.proc.join(0.2)
            if stop.is_set() and self.proc.is_alive():
                self.terminate()
                return 0
            code = self.proc.exitcode
            self._host_thread.join(2.0)  # a fatal message sent just before exiting
            if self._replan is not None and not stop.is_set():  # asked for (replan), not a crash
                self.echo(f"[supervisor] controller restarted: {self._replan}")
                self._replan = None
                self._spawn()
                started = time.time()
                continue
            if code == 0:
                return 0
            if code == 2 or self.host.fatal:
                msg = self.host.fatal or "controller stopped with a configuration error"
                raise _ERRORS.get(self.host.fatal_kind, ConfigError)(msg)
            if self.deadline is not None and time.time() >= self.deadline:
                return 0
            ran = time.time() - started
            fast_failures = fast_failures + 1 if ran < 10 else 0
            if fast_failures >= self.max_fast_failures:
                raise BackendError(f"the controller process keeps failing (exit code {code}, "
                                   f"{fast_failures} times within 10 s of starting; see its messages above)")
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self.echo(f"[supervisor] controller process {self.proc.pid} died ({how}); serving continues "
                      f"with the configuration in place; restarting in {delay:g} s")
            if stop.wait(delay):
                return 0
            delay = min(delay * 2, self.backoff[1]) if ran < 60 else self.backoff[0]
            self.restarts += 1
            self._spawn()
            started = time.time()

    def replan(self, why: str, overrides: dict[str, Any]) -> None:
        """Restart the controller with other scenario ``overrides`` (it saves its state and the new
        one resumes it), e.g. ``{"gpus": n}`` when a Ray fleet lost or regained GPUs, so it plans
        with what is left. Serving continues meanwhile."""
        self.spec = replace(self.spec, overrides={**self.spec.overrides, **overrides})
        self._replan = why
        p = self.proc
        if p is not None and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)

    def terminate(self, timeout_s: float = 60.0) -> None:
        """Ask the controller to stop (it finishes and saves the interval), then make sure."""
        p = self.proc
        if p is None or not p.is_alive():
            return
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        p.join(timeout_s)
        if p.is_alive():
            p.kill()
            p.join(5)
