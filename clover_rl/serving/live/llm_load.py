"""Open-loop LLM load over the OpenAI API: Poisson arrivals, (prompt, output) token counts drawn
from a fitted length distribution (``clover_rl.llm.lengths``), streamed answers timed by the
client.

Each request is ``POST /v1/completions`` with the prompt as byte-token ids (``BOS`` + random
bytes, so its length is exact whatever the text), ``max_tokens`` = the drawn output length,
``ignore_eos`` (so it generates exactly that many, as the simulator assumes) and ``stream``
with usage, so the client sees its first token. ``length_scale`` shrinks both lengths for the
CPU stand-ins (the Azure conversation trace's median prompt is ~1k tokens), capped at
``max_prompt`` / ``max_output``. Arrivals are open loop: a slow server does not slow the offered
load; requests still running ``timeout_s`` after they were sent are abandoned as errors.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.llm.lengths import TokenLengths
from clover_rl.serving.live.llm_tokens import BOS


@dataclass
class LLMLoadResult:
    """What the client saw (times in ms; one entry per answered request)."""

    sent: int = 0
    answered: int = 0
    statuses: Counter = field(default_factory=Counter)  # HTTP status (0: transport error/timeout)
    ttft_ms: list[float] = field(default_factory=list)
    tpot_ms: list[float] = field(default_factory=list)  # answered requests with > 1 token
    requested_tokens: int = 0  # output tokens asked for by every sent request
    output_tokens: int = 0  # output tokens received
    prompt_tokens: int = 0  # prompt tokens of answered requests
    wall_s: float = 0.0

    @property
    def errors(self) -> int:
        return self.sent - self.answered


def draw_lengths(lengths: TokenLengths, n: int, rng: np.random.Generator, scale: float = 1.0,
                 max_prompt: int = 512, max_output: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) pairs scaled by ``scale`` and capped (each >= 1)."""
    if not 0 < scale <= 1:
        raise ConfigError(f"length scale must be in (0, 1], got {scale}")
    p, o = lengths.sample(n, rng)
    p = np.clip(np.rint(p * scale), 1, max_prompt).astype(np.int64)
    o = np.clip(np.rint(o * scale), 1, max_output).astype(np.int64)
    return p, o


async def _stream(client, url: str, body: dict) -> tuple[int, float | None, float | None, dict | None]:
    """(status, first token time, last token time, usage) of one streamed completion."""
    first = last = None
    usage = None
    async with client.stream("POST", url, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code, None, None, None
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            if d.get("error"):  # failed after the stream began (e.g. the worker crashed)
                return 500, first, last, None
            if d.get("usage"):
                usage = d["usage"]
            if d.get("choices"):
                last = time.perf_counter()
                first = first or last
    return 200, first, last, usage


async def _one(client, url: str, model: str, prompt: list[int], n: int, timeout_s: float, res: LLMLoadResult) -> None:
    import httpx

    body = {"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    try:
        status, first, last, usage = await asyncio.wait_for(_stream(client, url, body), timeout_s)
    except (httpx.HTTPError, asyncio.TimeoutError, OSError):
        status, first, last, usage = 0, None, None, None
    res.statuses[status] += 1
    if status != 200:
        return
    res.answered += 1
    tokens = int(usage["completion_tokens"]) if usage else 0
    res.output_tokens += tokens
    res.prompt_tokens += int(usage["prompt_tokens"]) if usage else len(prompt)
    if first is not None:
        res.ttft_ms.append((first - t0) * 1000.0)
        if tokens > 1 and last is not None:
            res.tpot_ms.append((last - first) * 1000.0 / (tokens - 1))


async def run_llm_load_async(base_url: str, seconds: float, rate_rps: float, lengths: TokenLengths, *, seed: int = 0,
                             model: str = "llm", length_scale: float = 1.0, max_prompt: int = 512,
                             max_output: int = 128, timeout_s: float = 60.0) -> LLMLoadResult:
    if seconds <= 0 or rate_rps < 0:
        raise ConfigError(f"load needs seconds > 0 and rate >= 0, got {seconds} s at {rate_rps} req/s")
    import httpx

    rng = np.random.default_rng(seed)
    res = LLMLoadResult()
    url = base_url.rstrip("/") + "/v1/completions"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), limits=limits) as client:
        t0 = time.perf_counter()
        tasks = []
        t = rng.exponential(1.0 / rate_rps) if rate_rps > 0 else seconds
        while t < seconds:
            p, o = draw_lengths(lengths, 1, rng, length_scale, max_prompt, max_output)
            prompt = [BOS, *rng.integers(32, 127, int(p[0]) - 1).tolist()]
            delay = t0 + t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            res.sent += 1
            res.requested_tokens += int(o[0])
            tasks.append(asyncio.create_task(_one(client, url, model, prompt, int(o[0]), timeout_s, res)))
            t += rng.exponential(1.0 / rate_rps)
        rest = t0 + seconds - time.perf_counter()
        if rest > 0:
            await asyncio.sleep(rest)
        if tasks:
            await asyncio.wait(tasks)
        res.wall_s = time.perf_counter() - t0
    return res


def run_llm_load(base_url: str, seconds: float, rate_rps: float, lengths: TokenLengths, **kw: object) -> LLMLoadResult:
    """Blocking wrapper of :func:`run_llm_load_async` (its own event loop)."""
    return asyncio.run(run_llm_load_async(base_url, seconds, rate_rps, lengths, **kw))  # type: ignore[arg-type]
