"""One OS process per slice: load the variant, warm up, serve requests from a pipe.

Processes (``multiprocessing`` *spawn*), not threads, because a MIG slice is chosen per process
with ``CUDA_VISIBLE_DEVICES=<MIG UUID>`` before CUDA initialises, and because a crashed model must
not take the front end down.

CPU emulation of a slice (``device="cpu"``). The host running one worker with ``cpu_threads``
threads stands for the whole GPU (7 compute slices). A worker on a slice with ``c`` of the
GPU's ``C`` compute slices computes a request in ``t`` seconds of wall time and then sleeps

    sleep = t * (C / c - 1)        (duty-cycle throttle)

before answering, so its service time is ``t * C / c``: speed scales exactly with ``c / C`` and
a fully busy maximal partition demands ``cpu_threads`` cores on average. ``t`` is wall time, so
contention between concurrently computing workers on a small host is amplified by the same
factor (as sharing memory bandwidth would on a GPU); keep ``cpu_threads x slices`` within the
host's cores for clean figures.

Pipe protocol (tuples): parent -> worker ``("infer", id, inputs, shared)`` / ``("stop",)``, where
``shared`` (or None) locates large numeric inputs in a shared mapping instead of the pipe;
worker -> parent ``("ready", info)`` / ``("error", message)`` at start-up, then
``("done", id, outputs, service_s, compute_s)`` (numeric outputs packed, :func:`pack_outputs`)
or ``("fail", id, message, service_s)`` when the model rejects a request (answered 400, the
worker stays up).
"""
from __future__ import annotations

import logging
import mmap
import multiprocessing as mp
import os
import selectors
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from clover_rl.errors import CloverError
from clover_rl.services import ServiceSpec
from clover_rl.serving.live.frames import FrameReader, send_frame

log = logging.getLogger("clover_rl.serving.live")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; pickled to the child."""

    slot_id: str  # e.g. "gpu0/3g.20gb@4"
    service: ServiceSpec
    variant: str
    device: str = "cpu"  # "cpu" (emulated slice) or "cuda:<CUDA_VISIBLE_DEVICES value>"
    compute_slices: int = 7
    total_slices: int = 7
    input_scale: float = 1.0
    cpu_threads: int = 1
    throttle: bool = True  # CPU duty cycle (ignored on CUDA)
    warmup_requests: int = 2
    env: dict[str, str] = field(default_factory=dict)

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def entry(self) -> Any:
        """The child process's entry point, ``(spec, conn) -> None`` (LLM workers override it)."""
        return worker_main


def throttle_sleep_s(compute_s: float, compute_slices: int, total_slices: int = 7) -> float:
    """Idle time after ``compute_s`` of work so a ``c``-slice worker runs at ``c/C`` speed."""
    return max(0.0, compute_s * (total_slices / max(1, compute_slices) - 1.0))


MIN_SLEEP_S = 0.0005


class Throttle:
    """The duty-cycle throttle of one worker, with the sleep it owes carried between requests.

    A sleep shorter than :data:`MIN_SLEEP_S` is not taken but added to the next request's: such
    a sleep costs a context switch and overshoots by the kernel's timer slack (50 us by default),
    so for a fast model (the noop) it would cost the host more CPU than the model and slow the
    slice below ``c/C``. What a sleep overshoots is deducted from the next one (down to
    ``-MIN_SLEEP_S``), so over many requests the slice runs at ``c/C`` of the host's speed.
    """

    __slots__ = ("debt_s", "factor")

    def __init__(self, compute_slices: int, total_slices: int = 7) -> None:
        self.factor = max(0.0, total_slices / max(1, compute_slices) - 1.0)
        self.debt_s = 0.0

    def after(self, compute_s: float) -> None:
        """Called after ``compute_s`` seconds of work: sleep what is owed, if enough is."""
        if self.factor <= 0.0:
            return
        self.debt_s += compute_s * self.factor
        if self.debt_s >= MIN_SLEEP_S:
            t0 = time.perf_counter()
            time.sleep(self.debt_s)
            self.debt_s = max(-MIN_SLEEP_S, self.debt_s - (time.perf_counter() - t0))


# Numeric inputs from this size on go through the shared mapping: the pipe message stays small
# (one write, no pickled copy of the tensor), which pays from a few kB on.
SHARED_MIN_BYTES = 4 * 1024
_SHM_DIR = "/dev/shm"


class _SharedWriter:
    """Parent side of the input transfer: large numeric tensors go through a shared mapping.

    Pickling a 1.2 MB image batch through the pipe costs milliseconds of copies and context
    switches; a memcpy into a mapping both processes hold costs ~0.1 ms. The buffer is a file in
    /dev/shm, unlinked as soon as the worker has mapped it (so nothing leaks if we die), and
    reused for the next request only after the worker answered (one request in flight).
    """

    def __init__(self) -> None:
        self.enabled = os.path.isdir(_SHM_DIR) and os.access(_SHM_DIR, os.W_OK)
        self.path: str | None = None
        self.map: mmap.mmap | None = None
        self.linked = False

    def put(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict | None]:
        if not self.enabled:
            return inputs, None
        inline: dict[str, np.ndarray] = {}
        layout: dict[str, tuple] = {}
        off = 0
        for k, a in inputs.items():
            n = a.nbytes if type(a) is np.ndarray and a.dtype.kind != "O" else 0
            if n < SHARED_MIN_BYTES:
                inline[k] = a
                continue
            if self.map is None or len(self.map) < off + n:
                self._grow(off + sum(a.nbytes for a in inputs.values() if type(a) is np.ndarray), self.map, off)
            assert self.map is not None
            if a.flags.c_contiguous:  # one memcpy from the tensor's buffer
                self.map[off:off + n] = a.data.cast("B")
            else:
                np.ndarray(a.shape, a.dtype, buffer=self.map, offset=off)[...] = a
            layout[k] = (off, a.shape, a.dtype.str)
            off += n
        if not layout:
            return inputs, None
        return inline, {"path": self.path, "arrays": layout}

    def _grow(self, need: int, old: mmap.mmap | None = None, keep: int = 0) -> None:
        """A new buffer of at least ``need`` bytes, holding the first ``keep`` bytes of ``old``."""
        saved = bytes(old[:keep]) if old is not None and keep else b""
        self.close()
        fd, self.path = tempfile.mkstemp(prefix="clover-worker-", dir=_SHM_DIR)
        try:
            size = max(need, 1 << 20)
            os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.map[:keep] = saved
        self.linked = True

    def mapped(self) -> None:
        """The worker answered a request that used the buffer, so it holds the mapping."""
        if self.linked and self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.linked = False

    def close(self) -> None:
        self.mapped()
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:  # a view is still alive somewhere; the GC will unmap it
                pass
            self.map = None


class _SharedReader:
    """Worker side: map the parent's buffer (cached by path) and view the tensors in it."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.map: mmap.mmap | None = None

    def arrays(self, shared: dict, inline: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inline`` (the inputs that came through the pipe) plus views of the shared ones."""
        if shared["path"] != self.path:
            fd = os.open(shared["path"], os.O_RDWR)
            try:
                self.map = mmap.mmap(fd, 0)
            finally:
                os.close(fd)
            self.path = shared["path"]
        for k, (off, shape, dt) in shared["arrays"].items():
            inline[k] = np.ndarray(shape, dt, buffer=self.map, offset=off)
        return inline


def pack_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Numeric arrays as ``(dtype, shape, bytes)`` for the pipe: pickling that costs ~1 us, an
    ndarray ~10 us (and ~7 us to unpickle), per reply. Other values pass as they are."""
    packed = {}
    for k, a in outputs.items():  # a loop, not a comprehension: this runs per request
        packed[k] = (a.dtype.str, a.shape, a.tobytes()) if type(a) is np.ndarray and a.dtype.kind != "O" else a
    return packed


def unpack_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`pack_outputs`, in place (read-only arrays over the received bytes)."""
    for k, v in outputs.items():
        if type(v) is tuple:
            outputs[k] = np.frombuffer(v[2], v[0]).reshape(v[1])
    return outputs


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    if isinstance(e, CloverError) and msg:
        return msg[0]
    return f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def pin_device(spec: WorkerSpec) -> str:
    """Before torch/CUDA load: the slice (``CUDA_VISIBLE_DEVICES``) and CPU thread counts; returns
    the torch device (``cuda`` or ``cpu``). Also what a Ray slice actor does (no signals there)."""
    os.environ.update(spec.env)
    if spec.on_cuda:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.device.split(":", 1)[1]
        return "cuda"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(spec.cpu_threads)
    return "cpu"


def child_setup(spec: WorkerSpec) -> str:
    """In the child, before torch/CUDA load: signals, then :func:`pin_device`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent shuts workers down cleanly
    return pin_device(spec)


def prepare_worker(spec: WorkerSpec, torch_device: str) -> tuple[Any, dict[str, Any]]:
    """Load the variant on ``torch_device`` (pinned already) and warm it up; ``(servable, info)``.
    Shared by the worker process and the Ray slice actor, so both serve a slice the same way."""
    t0 = time.perf_counter()
    from clover_rl.serving.live.models import load_model, synthetic_inputs

    loaded = load_model(spec.service, spec.variant, torch_device, spec.input_scale)
    torch = sys.modules.get("torch")
    if torch is not None and not spec.on_cuda:  # OMP_NUM_THREADS already applied at import
        torch.set_num_threads(spec.cpu_threads)
    load_s = time.perf_counter() - t0
    x = synthetic_inputs(spec.service, np.random.default_rng(0))
    for _ in range(spec.warmup_requests):
        loaded.servable.infer(x)
    warm_s = time.perf_counter() - t0 - load_s
    return loaded.servable, {"pid": os.getpid(), "load_s": load_s, "warmup_s": warm_s,
                             "weights": loaded.weights, "detail": loaded.detail}


def serve_request(servable: Any, spec: WorkerSpec, rid: int, inputs: dict[str, np.ndarray],
                  throttle: Throttle | None = None) -> tuple:
    """One request: ``("done", rid, outputs, service_s, compute_s)``, or ``("fail", rid, message,
    service_s)`` when the model rejects it. CPU slices sleep the duty-cycle throttle (the
    worker's ``throttle``, made for ``spec``, which carries short sleeps over; without one, every
    sleep is taken)."""
    t0 = time.perf_counter()
    try:
        out = servable.infer(inputs)
    except Exception as e:
        return ("fail", rid, one_line(e), time.perf_counter() - t0)
    compute = time.perf_counter() - t0
    if throttle is not None:  # made for this spec: a no-op where the throttle does not apply
        throttle.after(compute)
    elif spec.throttle and not spec.on_cuda and spec.compute_slices < spec.total_slices:
        time.sleep(throttle_sleep_s(compute, spec.compute_slices, spec.total_slices))
    return ("done", rid, out, time.perf_counter() - t0, compute)


def send_start_error(conn: Connection, e: BaseException) -> None:
    """Tell the parent a worker could not start (one line); nothing if the pipe is gone."""
    try:
        conn.send(("error", one_line(e)))
    except OSError:
        pass


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Child process entry point."""
    try:
        servable, info = prepare_worker(spec, child_setup(spec))
    except BaseException as e:
        send_start_error(conn, e)
        return
    conn.send(("ready", info))
    reader = _SharedReader()
    throttle = Throttle(spec.compute_slices, spec.total_slices) if spec.throttle and not spec.on_cuda else Throttle(1, 1)
    fd = conn.fileno()
    frames = FrameReader(fd)
    while True:
        try:
            msg = frames.recv()
        except (EOFError, OSError):
            return  # parent gone
        if msg[0] == "stop":
            return
        _, rid, inputs, shared = msg
        if shared is not None:
            try:
                inputs = reader.arrays(shared, inputs)
            except Exception as e:
                reply: tuple = ("fail", rid, one_line(e), 0.0)
            else:
                reply = serve_request(servable, spec, rid, inputs, throttle)
        else:
            reply = serve_request(servable, spec, rid, inputs, throttle)
        if reply[0] == "done":
            reply = ("done", rid, pack_outputs(reply[2]), reply[3], reply[4])
        try:
            send_frame(fd, reply)
        except OSError:
            return  # parent gone


class WorkerCrashed(Exception):
    """The worker process died (or hung past the request timeout) while serving."""


class WorkerStartError(Exception):
    """The worker could not load or warm up its model."""


class WorkerProcess:
    """Parent-side handle of one worker process."""

    def __init__(self, spec: WorkerSpec, context: str = "spawn"):
        self.spec = spec
        self._ctx = mp.get_context(context)
        self.proc: Any = None
        self.conn: Connection | None = None
        self.info: dict[str, Any] = {}
        self._shared = _SharedWriter()
        self._pending_shared = False
        self._frames: FrameReader | None = None
        self._fd = -1
        self._sel: selectors.BaseSelector | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        self.proc = self._ctx.Process(target=self.spec.entry(), args=(self.spec, child), daemon=True,
                                      name=f"clover-worker {self.spec.slot_id} {self.spec.variant}")
        self.proc.start()
        child.close()
        self.conn = parent
        # worker_main answers each request once, so reading ahead is safe (see FrameReader); other
        # entries (an LLM worker's stream of steps) are read one message per readable event
        self._fd = parent.fileno()
        self._frames = FrameReader(self._fd) if self.spec.entry() is worker_main else None
        self._sel = selectors.DefaultSelector()  # one epoll for the worker's life, not one per call
        self._sel.register(parent, selectors.EVENT_READ, "conn")
        self._sel.register(self.proc.sentinel, selectors.EVENT_READ, "exit")

    def _wait(self, timeout_s: float | None) -> set[str]:
        """Which of "conn" (a message) and "exit" (process gone) are ready."""
        return {key.data for key, _ in self._sel.select(timeout_s)}

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Block until the model is loaded and warm; raise WorkerStartError otherwise."""
        assert self.conn is not None
        ready = self._wait(timeout_s)
        msg: Any = None
        if "conn" in ready:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = None
        if msg is None:
            self.kill()
            if not ready:
                raise WorkerStartError(f"worker {self.spec.slot_id} ({self.spec.variant}) not ready after {timeout_s:.0f} s")
            raise WorkerStartError(f"worker {self.spec.slot_id} ({self.spec.variant}) died while starting "
                                   f"(exit code {self.proc.exitcode})")
        if msg[0] == "error":
            self.kill()
            raise WorkerStartError(f"worker {self.spec.slot_id} ({self.spec.variant}): {msg[1]}")
        self.info = msg[1]
        return self.info

    def fileno(self) -> int:
        """The pipe's descriptor, for an event loop to watch for replies (and EOF on a crash)."""
        assert self.conn is not None
        return self.conn.fileno()

    def send(self, rid: int, inputs: dict[str, np.ndarray]) -> None:
        """Hand one request to the worker (one in flight at a time); WorkerCrashed if it is gone."""
        assert self.conn is not None
        inline, shared = self._shared.put(inputs)
        self._pending_shared = shared is not None
        try:
            send_frame(self._fd, ("infer", rid, inline, shared))
        except (OSError, ValueError) as e:
            raise WorkerCrashed(f"send failed: {e}") from None

    def recv(self) -> tuple:
        """The worker's reply, once its pipe is readable; WorkerCrashed on EOF (it died)."""
        assert self.conn is not None
        try:
            reply = self._frames.recv() if self._frames is not None else self.conn.recv()
        except (EOFError, OSError):
            raise WorkerCrashed("process exited") from None
        if self._pending_shared:
            if self._shared.linked:
                self._shared.mapped()
            self._pending_shared = False
        if reply[0] == "done":
            unpack_outputs(reply[2])
        return reply

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not."""
        if self.proc is None:
            return
        if self.conn is not None:
            try:
                self.conn.send(("stop",))
            except (OSError, ValueError):
                pass
        self.proc.join(timeout_s)
        self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(2.0)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(2.0)
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self._fd = -1  # a later send fails (EBADF -> WorkerCrashed), never writes to a reused descriptor
        self._shared.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None
