"""The LLM front end: OpenAI-compatible ``/v1`` endpoints beside the KServe v2 generate extension,
on the LLM worker pool's event loop, with Prometheus metrics.

Endpoints (model name = the service name, e.g. ``llm``):

- ``GET /v1/models``; ``POST /v1/completions`` and ``POST /v1/chat/completions`` (JSON, or with
  ``"stream": true`` server-sent events ``data: {...}`` ending with ``data: [DONE]``; the last
  chunk before it carries ``usage`` when ``stream_options.include_usage``). Shapes and accepted
  fields: :mod:`.openai_api`. Errors: OpenAI's ``{"error": {...}}``.
- ``POST /v2/models/{name}/generate`` (``{"text_input" | "input_ids", "parameters"}`` ->
  ``{"model_name", "model_version", "text_output", ...}``) and ``/generate_stream`` (SSE of such
  objects, ``text_output`` = the new text), the KServe v2 / Triton generate extension; errors
  ``{"error": "..."}`` as on the vision front end. ``GET /v2``, ``/v2/health/live``,
  ``/v2/health/ready``, ``/v2/models/{name}[/ready]``.
- ``GET /metrics``: the pool's gauges (:class:`~.server.PoolCollector`), ``clover_requests``
  by status, and the replay side's LLM quantities (``clover_rl/llm/metrics.py``):
  ``clover_llm_ttft_seconds`` and ``clover_llm_tpot_seconds`` histograms,
  ``clover_llm_prompt_tokens_total`` and ``clover_llm_output_tokens_total``. TTFT = request
  accepted -> first token at the front end; TPOT = (last token - first token) / (tokens - 1).

The client's deadline (header ``X-Request-Timeout-Ms``, else the pool's default) bounds the time
to the first token; a request that cannot meet it is refused at once (503 + ``Retry-After``).
A streaming client that disconnects cancels its generation.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from clover_rl.serving.live.codec import CodecError
from clover_rl.serving.live.dispatch import RequestError
from clover_rl.serving.live.energy import EnergyMeter
from clover_rl.serving.live.llm_dispatch import (
    LLMResult,
    LLMWorkerPool,
    TokenChunk,
    TokenStream,
    retry_after,
)
from clover_rl.serving.live.llm_worker import GenRequest
from clover_rl.serving.live.openai_api import (
    OpenAIError,
    OpenAIRequest,
    chunk,
    new_id,
    parse_generate,
    parse_openai,
    response,
    sse,
    usage,
)
from clover_rl.serving.live.server import DEADLINE_HEADER, PoolCollector, deadline_header

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(frozen=True)
class LLMRecord:
    """One generation as the front end saw it (times s; NaN where no token came)."""

    status: int
    done_at: float  # time.perf_counter()
    ttft_s: float
    tpot_s: float
    prompt_tokens: int
    output_tokens: int
    variant: str | None
    max_tokens: int = 0  # output tokens the request asked for


class _Gen:
    """One generation's front-end bookkeeping: times, text, metrics."""

    def __init__(self, stream: TokenStream, t0: float, max_tokens: int):
        self.stream = stream
        self.max_tokens = max_tokens
        self.t0 = t0
        self.first: float | None = None
        self.last = t0
        self.prompt = 0
        self.tokens = 0
        self.result: LLMResult | None = None

    async def next(self) -> TokenChunk | LLMResult:
        item = await self.stream.next()
        if isinstance(item, TokenChunk):
            if item.prompt_tokens is not None:
                self.prompt = item.prompt_tokens
            if self.first is None:
                self.first = item.at
            self.last = item.at
            self.tokens += len(item.tokens)
        else:
            self.result = item
        return item


def _openai_error(e: OpenAIError) -> JSONResponse:
    headers = {"retry-after": str(e.retry_after)} if e.retry_after is not None else None
    return JSONResponse(e.body(), status_code=e.status, headers=headers)


def _from_request_error(e: RequestError) -> OpenAIError:
    ra = retry_after(e)
    code = "overloaded" if ra is not None else ("unavailable" if e.status == 503 else None)
    return OpenAIError(e.status, str(e), code=code, retry_after=ra,
                       type="invalid_request_error" if e.status == 400 else "server_error")


def create_llm_app(pool: LLMWorkerPool, meter: EnergyMeter | None = None, *, device: str = "cpu",
                   registry: CollectorRegistry | None = None, version: str = "0.1.0") -> FastAPI:
    """The OpenAI + KServe v2 generate app over ``pool``; ``app.state.llm_records`` keeps an
    :class:`LLMRecord` per generation."""
    name = pool.service.name
    app = FastAPI(title="clover-rl LLM inference", version=version, docs_url=None, redoc_url=None, openapi_url=None)
    reg = registry or CollectorRegistry()
    requests_total = Counter("clover_requests", "Inference requests by final status", ["model", "status"], registry=reg)
    ttft_h = Histogram("clover_llm_ttft_seconds", "Time to first token (front end)", ["model"], buckets=TTFT_BUCKETS,
                       registry=reg)
    tpot_h = Histogram("clover_llm_tpot_seconds", "Time per output token after the first", ["model"],
                       buckets=TPOT_BUCKETS, registry=reg)
    prompt_c = Counter("clover_llm_prompt_tokens", "Prompt tokens of answered requests", ["model"], registry=reg)
    output_c = Counter("clover_llm_output_tokens", "Output tokens served", ["model"], registry=reg)
    reg.register(PoolCollector(pool, meter, device))  # type: ignore[arg-type]
    app.state.registry = reg
    app.state.pool = pool
    app.state.llm_records = deque(maxlen=1_000_000)
    created = int(time.time())

    def ready() -> bool:
        return pool.configuration is not None and pool.ready_count > 0 and not pool.draining

    def account(g: _Gen, status: int) -> None:
        requests_total.labels(name, str(status)).inc()
        ttft = tpot = float("nan")
        if g.first is not None:
            ttft = g.first - g.t0
            ttft_h.labels(name).observe(ttft)
            if g.tokens > 1:
                tpot = (g.last - g.first) / (g.tokens - 1)
                tpot_h.labels(name).observe(tpot)
        if g.tokens:
            output_c.labels(name).inc(g.tokens)
        if status == 200:
            prompt_c.labels(name).inc(g.prompt)
        app.state.llm_records.append(LLMRecord(status, time.perf_counter(), ttft, tpot, g.prompt, g.tokens,
                                               g.result.variant if g.result else None, g.max_tokens))

    def start(req: GenRequest, request: Request) -> _Gen:
        timeout_s = deadline_header(request.headers.get(DEADLINE_HEADER, "").encode() or None)
        return _Gen(pool.generate(req, timeout_s), time.perf_counter(), req.params.max_tokens)

    async def first_item(g: _Gen) -> TokenChunk | LLMResult:
        """The first chunk (or the result); RequestError when refused, counted here."""
        try:
            return await g.next()
        except RequestError as e:
            account(g, e.status)
            raise

    async def collect(g: _Gen, item: TokenChunk | LLMResult) -> tuple[str, LLMResult]:
        """A non-streamed answer: the whole text and the result (both APIs); accounted here, a
        failure mid-generation as RequestError."""
        parts: list[str] = []
        try:
            while isinstance(item, TokenChunk):
                parts.append(item.text)
                item = await g.next()
        except RequestError as e:
            account(g, e.status)
            raise
        account(g, 200)
        return "".join(parts), item

    # ------------------------------------------------------------------ OpenAI
    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "clover-rl"}]}

    async def openai(kind: str, request: Request) -> Response:
        try:
            req = parse_openai(kind, await request.body(), name)
            g = start(req.gen, request)
            item = await first_item(g)
        except (CodecError, ValueError) as e:
            return _openai_error(OpenAIError(400, str(e).splitlines()[0], param=None))
        except OpenAIError as e:
            return _openai_error(e)
        except RequestError as e:
            return _openai_error(_from_request_error(e))
        rid = new_id(kind)
        if req.stream:
            return StreamingResponse(_openai_stream(req, rid, g, item), media_type="text/event-stream",
                                     headers=SSE_HEADERS)
        try:
            text, res = await collect(g, item)
        except RequestError as e:
            return _openai_error(_from_request_error(e))
        return JSONResponse(response(req, rid, text, res.finish_reason, res.prompt_tokens, res.completion_tokens,
                                     f"{res.variant}@{res.slot_id}"))

    async def _openai_stream(req: OpenAIRequest, rid: str, g: _Gen, item: TokenChunk | LLMResult) -> AsyncIterator[bytes]:
        ts = int(time.time())
        status = 499
        try:
            if req.kind == "chat":
                yield sse(chunk(req, rid, ts, "", None, first=True))
            while isinstance(item, TokenChunk):
                if item.text:
                    yield sse(chunk(req, rid, ts, item.text, None))
                item = await g.next()
            fp = f"{item.variant}@{item.slot_id}"
            yield sse(chunk(req, rid, ts, "" if req.kind == "completion" else None, item.finish_reason, fp))
            if req.include_usage:
                yield sse(chunk(req, rid, ts, None, None, fp, usage(item.prompt_tokens, item.completion_tokens)))
            yield sse("[DONE]")
            status = 200
        except RequestError as e:
            status = e.status
            yield sse(_from_request_error(e).body())
            yield sse("[DONE]")
        finally:
            if status == 499:
                g.stream.cancel()
            account(g, status)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await openai("completion", request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await openai("chat", request)

    # ------------------------------------------------------------------ KServe v2 generate
    def v2_error(status: int, msg: str, ra: int | None = None) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status, headers={"retry-after": str(ra)} if ra else None)

    async def generate(model: str, request: Request, stream_route: bool) -> Response:
        if model != name:
            return v2_error(404, f"unknown model {model!r} (this server serves {name!r})")
        try:
            req, stream = parse_generate(await request.body())
            g = start(req, request)
            item = await first_item(g)
        except OpenAIError as e:
            return v2_error(e.status, str(e))
        except (CodecError, ValueError) as e:
            return v2_error(400, str(e).splitlines()[0])
        except RequestError as e:
            return v2_error(e.status, str(e), retry_after(e))
        if stream or stream_route:
            return StreamingResponse(_v2_stream(g, item), media_type="text/event-stream", headers=SSE_HEADERS)
        try:
            text, res = await collect(g, item)
        except RequestError as e:
            return v2_error(e.status, str(e), retry_after(e))
        return JSONResponse(_v2_body(text, res))

    def _v2_body(text: str, res: LLMResult | None) -> dict[str, Any]:
        out: dict[str, Any] = {"model_name": name, "model_version": "1", "text_output": text}
        if res is not None:
            out.update(finish_reason=res.finish_reason, prompt_tokens=res.prompt_tokens,
                       completion_tokens=res.completion_tokens, variant=res.variant, slice=res.slot_id)
        return out

    async def _v2_stream(g: _Gen, item: TokenChunk | LLMResult) -> AsyncIterator[bytes]:
        status = 499
        try:
            while isinstance(item, TokenChunk):
                if item.text:
                    yield sse(_v2_body(item.text, None))
                item = await g.next()
            yield sse(_v2_body("", item))
            status = 200
        except RequestError as e:
            status = e.status
            yield sse({"error": str(e)})
        finally:
            if status == 499:
                g.stream.cancel()
            account(g, status)

    @app.post("/v2/models/{model}/generate")
    async def v2_generate(model: str, request: Request) -> Response:
        return await generate(model, request, False)

    @app.post("/v2/models/{model}/generate_stream")
    async def v2_generate_stream(model: str, request: Request) -> Response:
        return await generate(model, request, True)

    # ------------------------------------------------------------------ health, metadata, metrics
    @app.get("/v2")
    async def server_metadata() -> dict:
        return {"name": "clover-rl", "version": version, "extensions": ["generate"]}

    @app.get("/v2/health/live")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    @app.get("/health")
    async def health_ready() -> Response:
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    @app.get("/v2/models/{model}")
    async def model_metadata(model: str) -> Response:
        if model != name:
            return v2_error(404, f"unknown model {model!r} (this server serves {name!r})")
        return JSONResponse({"name": name, "versions": ["1"], "platform": "clover-rl",
                             "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]}],
                             "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}],
                             "parameters": {"variants": ",".join(pool.service.variant_names)}})

    @app.get("/v2/models/{model}/ready")
    async def model_ready(model: str) -> Response:
        if model != name:
            return v2_error(404, f"unknown model {model!r} (this server serves {name!r})")
        return JSONResponse({"name": name, "ready": ready()}, status_code=200 if ready() else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        data = await asyncio.get_running_loop().run_in_executor(None, generate_latest, reg)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    _install_errors(app)
    return app


def _install_errors(app: FastAPI) -> None:
    """FastAPI's own errors (404 route, 405, 422, 500) in OpenAI's shape under ``/v1``, else v2's."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def shaped(request: Any, status: int, msg: str, headers: Any = None) -> JSONResponse:
        if request.url.path.startswith("/v1"):
            body: dict = OpenAIError(status, msg).body()
        else:
            body = {"error": msg}
        return JSONResponse(body, status_code=status, headers=headers)

    async def http_error(request: Any, exc: StarletteHTTPException) -> JSONResponse:
        msg = {404: f"no route {request.url.path!r}",
               405: f"method {request.method} is not allowed on {request.url.path!r}"}.get(exc.status_code)
        return shaped(request, exc.status_code, msg or str(exc.detail), getattr(exc, "headers", None))

    async def validation_error(request: Any, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        return shaped(request, 422, f"invalid request: {errs[0].get('msg') if errs else 'validation failed'}")

    async def unexpected(request: Any, exc: Exception) -> JSONResponse:
        return shaped(request, 500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)


__all__ = ["LLMRecord", "create_llm_app"]
