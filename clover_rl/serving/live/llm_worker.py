"""LLM worker processes: one per (emulated) MIG slice, generating tokens with continuous batching.

The process machinery is the vision workers' (:mod:`.worker`: spawn, ``CUDA_VISIBLE_DEVICES``
set to the slice's MIG UUID before CUDA loads, ready/error hand-shake, crash detection); only
the entry point and the pipe protocol differ, because a worker holds many requests at once:

- parent -> worker: ``("gen", id, GenRequest)``, ``("cancel", id)``, ``("stop",)``;
- worker -> parent: ``("ready", info)`` / ``("error", message)`` at start-up, then after every
  iteration ``("step", kind, events, compute_s, service_s)`` with events
  ``(id, token_ids, text, finish_reason | None, prompt_tokens | None)`` (prompt tokens on a
  request's first event), and ``("fail", id, message, 0.0)`` for a request the engine refuses
  (answered 400; the worker stays up).

Between iterations the worker takes every message waiting in its pipe, so a request that
arrives while a batch runs joins it at the next iteration; with nothing to do it blocks on the
pipe. CPU slices are throttled per iteration like the vision workers (``throttle_sleep_s``).

Engines: ``tiny`` (:class:`TinyGenerator`, the random-weight Llama stand-in of
:mod:`.llm_engine` with byte tokens) and ``vllm`` (:mod:`.llm_vllm`, the real model with vLLM's
own continuous batching, when the ``vllm`` extra is installed).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from clover_rl.errors import ConfigError
from clover_rl.serving.live.llm_engine import GenParams
from clover_rl.serving.live.worker import (
    WorkerSpec,
    child_setup,
    one_line,
    send_start_error,
    throttle_sleep_s,
)

ENGINES = ("tiny", "vllm")


@dataclass(frozen=True)
class GenRequest:
    """One generation: the prompt as text or token ids (exactly one), and how to generate."""

    text: str | None
    ids: tuple[int, ...] | None
    params: GenParams


@dataclass(frozen=True)
class LLMWorkerSpec(WorkerSpec):
    """A worker spec for LLM slices: ``max_batch`` seats on a whole GPU (a slice of ``c`` of
    ``C`` compute slices gets ``ceil(max_batch x c / C)``), the engine, and for vLLM the model
    path overriding the variant's published checkpoint."""

    max_batch: int = 8
    engine: str = "tiny"
    model_path: str | None = None

    def entry(self) -> Any:
        return llm_worker_main

    @property
    def seats(self) -> int:
        return max(1, math.ceil(self.max_batch * self.compute_slices / max(1, self.total_slices)))


Event = tuple[int, list[int], str, "str | None", "int | None"]


class Generator(Protocol):
    detail: str

    @property
    def busy(self) -> bool: ...

    def add(self, rid: int, req: GenRequest) -> None: ...

    def cancel(self, rid: int) -> None: ...

    def step(self) -> tuple[str, list[Event]]: ...


class TinyGenerator:
    """The CPU stand-in: byte tokens in, byte tokens (and their UTF-8 text) out."""

    def __init__(self, spec: LLMWorkerSpec):
        from clover_rl.serving.live.llm_engine import BatchEngine, build_model, tiny_shape

        v = spec.service.variant(spec.variant)
        shape = tiny_shape(v.decode_weight_bytes, v.model.layers, spec.input_scale)
        self.engine = BatchEngine(build_model(shape, seed=0, threads=spec.cpu_threads), spec.seats)
        self._decoders: dict[int, Any] = {}
        self._first: dict[int, int] = {}
        self.detail = (f"random-weight Llama stand-in: {shape.layers} layers x {shape.hidden} "
                       f"({shape.params / 1e6:.2f}M parameters), {spec.seats} seats, byte tokens")

    @property
    def busy(self) -> bool:
        return self.engine.busy

    def add(self, rid: int, req: GenRequest) -> None:
        from clover_rl.serving.live.llm_tokens import StreamDecoder, encode

        ids = list(req.ids) if req.ids is not None else encode(req.text or "")
        self.engine.add(rid, ids, req.params)
        self._decoders[rid] = StreamDecoder()
        self._first[rid] = len(ids)

    def cancel(self, rid: int) -> None:
        self.engine.cancel(rid)
        self._decoders.pop(rid, None)
        self._first.pop(rid, None)

    def step(self) -> tuple[str, list[Event]]:
        kind, raw = self.engine.step()
        events: list[Event] = []
        for rid, tok, why in raw:
            dec = self._decoders[rid]
            text = dec.feed([tok])
            if why is not None:
                text += dec.flush()
                del self._decoders[rid]
            events.append((rid, [tok], text, why, self._first.pop(rid, None)))
        return kind, events


def make_generator(spec: LLMWorkerSpec, device: str) -> Generator:
    if spec.engine == "tiny":
        if device != "cpu":
            raise ConfigError("the tiny LLM engine runs on the CPU; use engine 'vllm' on GPUs")
        return TinyGenerator(spec)
    if spec.engine == "vllm":
        from clover_rl.serving.live.llm_vllm import VllmGenerator

        return VllmGenerator(spec)
    raise ConfigError(f"unknown LLM engine {spec.engine!r} (known: {', '.join(ENGINES)})")


def _warm(gen: Generator, n: int) -> None:
    for i in range(n):
        gen.add(-1 - i, GenRequest("warm-up", None, GenParams(max_tokens=4, temperature=0.0)))
    while gen.busy:
        gen.step()


def llm_worker_main(spec: LLMWorkerSpec, conn: Connection) -> None:
    """Child process entry point (see the module docstring for the protocol)."""
    device = child_setup(spec)
    t0 = time.perf_counter()
    try:
        gen = make_generator(spec, device)
        load_s = time.perf_counter() - t0
        _warm(gen, min(spec.warmup_requests, 2))
    except BaseException as e:
        send_start_error(conn, e)
        return
    conn.send(("ready", {"pid": os.getpid(), "load_s": load_s, "warmup_s": time.perf_counter() - t0 - load_s,
                         "weights": "random" if spec.engine == "tiny" else spec.engine, "detail": gen.detail}))
    slow = spec.throttle and device == "cpu" and spec.compute_slices < spec.total_slices
    while True:
        block = not gen.busy
        try:
            while block or conn.poll(0):
                msg = conn.recv()
                if msg[0] == "stop":
                    return
                if msg[0] == "gen":
                    try:
                        gen.add(msg[1], msg[2])
                    except (ValueError, ConfigError) as e:
                        conn.send(("fail", msg[1], str(e).splitlines()[0] if str(e) else one_line(e), 0.0))
                elif msg[0] == "cancel":
                    gen.cancel(msg[1])
                block = not gen.busy
        except (EOFError, OSError):
            return  # parent gone
        t1 = time.perf_counter()
        kind, events = gen.step()
        compute = time.perf_counter() - t1
        if slow:
            time.sleep(throttle_sleep_s(compute, spec.compute_slices, spec.total_slices))
        if events:
            conn.send(("step", kind, events, compute, time.perf_counter() - t1))
