"""The front end: KServe v2 / Open Inference Protocol over HTTP, plus Prometheus metrics.

Endpoints (model name = service name, one version "1"):
``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{name}``,
``GET /v2/models/{name}/ready``, ``GET /v2/models/{name}/config``,
``POST /v2/models/{name}/infer`` (JSON or Triton's binary tensor extension, so
``tritonclient.http`` works unchanged), and ``GET /metrics``.

The infer route is served on the pool's own event loop by parser callbacks (:mod:`.fastpath`:
no task or future per request; the worker's answer is written to the socket from the
dispatcher's callback), else by a plain ASGI route in front of FastAPI (:class:`_InferRoute`);
both decode and check the request the same way. The
client's deadline is the header ``X-Request-Timeout-Ms`` or Triton's request parameter
``timeout`` (microseconds); parameters this server does not act on are refused, never ignored.
Every error, FastAPI's own included, is a v2 body ``{"error": "..."}``: 400 (bad request or
unsupported parameter), 404 (unknown model or route), 405 (method), 422 (validation), 500
(request crashed its workers), 503 (refused by admission control -- with ``Retry-After`` --,
deadline passed, no worker, draining or shutting down).
"""
from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import re
import socket
import threading
import time
import zlib
from bisect import bisect_left
from collections import deque
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from clover_rl.serving.live.codec import HEADER, CodecError, RequestDecoder, ResponseEncoder
from clover_rl.serving.live.collectors import PoolCollector, RequestMetrics
from clover_rl.serving.live.energy import EnergyMeter
from clover_rl.serving.live.fastpath import FastRequest, protocol_for
from clover_rl.serving.live.models import check_inputs, io_spec
from clover_rl.serving.live.pool import InferResult, RequestError, WorkerPool
from clover_rl.serving.live.requests import ServerRecord

log = logging.getLogger("clover_rl.serving.live")

NAN = float("nan")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _error(status: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": msg}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error FastAPI/Starlette raise (unknown route 404, wrong method 405, request
    validation 422, an unexpected exception 500) answered in the v2 ``{"error": "..."}`` shape,
    so v2 clients (tritonclient) can decode it; headers such as ``Allow`` are kept."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def http_error(request: Any, exc: StarletteHTTPException) -> JSONResponse:
        msg = {404: f"no route {request.url.path!r} (see GET /v2 and /v2/models/{{name}})",
               405: f"method {request.method} is not allowed on {request.url.path!r}"}.get(exc.status_code)
        return _error(exc.status_code, msg or str(exc.detail), getattr(exc, "headers", None))

    async def validation_error(request: Any, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(x) for x in first.get("loc", ()))
        return _error(422, f"invalid request{' ' + loc if loc else ''}: {first.get('msg', 'validation failed')}")

    async def unexpected(request: Any, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)


def _error_body(msg: str) -> bytes:
    return json.dumps({"error": msg}).encode()


_HEADER_KEY = HEADER.lower().encode()
_JSON_CT = b"content-type: application/json\r\n"
_BINARY_CT = b"content-type: application/octet-stream\r\n" + _HEADER_KEY + b": %d\r\n"
DEADLINE_HEADER = "X-Request-Timeout-Ms"
_DEADLINE_KEY = DEADLINE_HEADER.lower().encode()


def deadline_header(raw: bytes | None) -> float | None:
    """The client's deadline in seconds from the ``X-Request-Timeout-Ms`` header, if sent."""
    if raw is None:
        return None
    try:
        ms = float(raw)
    except ValueError:
        ms = float("nan")
    if not (ms > 0 and math.isfinite(ms)):
        raise CodecError(f"header {DEADLINE_HEADER} must be a positive number of milliseconds, got {raw.decode('latin-1')!r}")
    return ms / 1000.0


_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


class _InferRoute:
    """``POST /v2/models/{name}[/versions/{v}]/infer`` as a plain ASGI route in front of FastAPI.

    The hot path skips FastAPI's middleware, routing and dependency resolution (~0.1-0.2 ms of
    CPU per request, which at hundreds of requests/s on a small host is most of the front end's
    cost); every other path goes through the FastAPI app as usual. ``create_app`` leaves it in
    ``app.state.asgi``, which :class:`FrontEnd` serves.
    """

    def __init__(self, app: Any, handler: Any, record: Any = None):
        self.app = app
        self.handler = handler
        self.record = record  # called with ServerRecord after each response is sent

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        m = _INFER.match(scope.get("path", "")) if scope["type"] == "http" else None
        if m is None:
            await self.app(scope, receive, send)
            return
        t_accept = time.perf_counter()
        pool_s = float("nan")
        if scope["method"] != "POST":
            status, payload, extra = 405, _error_body(f"method {scope['method']} is not allowed on "
                                                      f"{scope['path']!r} (use POST)"), [
                (b"content-type", b"application/json"), (b"allow", b"POST")]
        else:
            chunks = []
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body", False):
                    break
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            headers = dict(scope["headers"])
            status, payload, extra, pool_s = await self.handler(unquote(m.group(1)), unquote(m.group(2) or "1"),
                                                                body, headers)
        hdrs = extra or [(b"content-type", b"application/json")]
        hdrs.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": payload})
        if self.record is not None:
            done = time.perf_counter()
            self.record(ServerRecord(status, done, done - t_accept, pool_s))


def create_app(
    pool: WorkerPool,
    meter: EnergyMeter | None = None,
    *,
    device: str = "cpu",
    registry: CollectorRegistry | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """The KServe v2 app over ``pool``; ``app.state`` holds the metrics and overhead samples."""
    service = pool.service
    name = service.name
    inputs, outputs = io_spec(service)
    app = FastAPI(title="clover-rl inference", version=version, docs_url=None, redoc_url=None, openapi_url=None)
    _install_error_handlers(app)
    reg = registry or CollectorRegistry()
    requests = RequestMetrics(name, LATENCY_BUCKETS)  # clover_requests_total, clover_request_latency_seconds
    reg.register(requests)
    reg.register(PoolCollector(pool, meter, device))
    app.state.registry = reg
    app.state.pool = pool
    # Front-end + dispatch overhead per answered request: handler time minus worker service time.
    app.state.overhead_s = deque(maxlen=200_000)
    # Server-side latency of every infer request (accepted to response sent): ServerRecords.
    app.state.server_records = deque(maxlen=2_000_000)
    metadata = {
        "name": name, "versions": ["1"], "platform": "clover-rl",
        "inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs],
        "parameters": {"variants": ",".join(service.variant_names), "task": service.task},
    }

    def ready() -> bool:
        return pool.configuration is not None and pool.ready_count > 0 and not pool.draining

    def unknown(model: str) -> JSONResponse:
        return _error(404, f"unknown model {model!r} (this server serves {name!r})")

    @app.get("/v2")
    async def server_metadata() -> dict:
        return {"name": "clover-rl", "version": version, "extensions": ["binary_tensor_data"]}

    # Kubernetes probes: liveness = the process answers (never false while it runs: a restart
    # would lose accepted work); readiness = it can serve now (a configuration, a warm worker,
    # not draining after SIGTERM). KServe's v2 paths, with the usual 200/503 statuses.
    @app.get("/v2/health/live")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def health_ready() -> Response:
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    @app.get("/v2/models/{model}")
    @app.get("/v2/models/{model}/versions/{mv}")
    async def model_metadata(model: str, mv: str = "1") -> Response:
        if model != name or mv != "1":
            return unknown(model)
        return JSONResponse(metadata)

    @app.get("/v2/models/{model}/config")
    @app.get("/v2/models/{model}/versions/{mv}/config")
    async def model_config(model: str, mv: str = "1") -> Response:
        if model != name or mv != "1":
            return unknown(model)
        return JSONResponse({"name": name, "platform": "clover-rl", "max_batch_size": 0,
                             "input": [{"name": t.name, "data_type": "TYPE_" + t.datatype.replace("BYTES", "STRING"),
                                        "dims": list(t.shape)} for t in inputs],
                             "output": [{"name": t.name, "data_type": "TYPE_" + t.datatype.replace("BYTES", "STRING"),
                                         "dims": list(t.shape)} for t in outputs]})

    @app.get("/v2/models/{model}/ready")
    @app.get("/v2/models/{model}/versions/{mv}/ready")
    async def model_ready(model: str, mv: str = "1") -> Response:
        if model != name or mv != "1":
            return unknown(model)
        return JSONResponse({"name": name, "ready": ready()}, status_code=200 if ready() else 503)

    decoder = RequestDecoder(lambda inputs: check_inputs(service, inputs))
    encoder = ResponseEncoder(name)

    def begin(model: str, mv: str, body: bytes, headers: dict[bytes, bytes]) -> tuple[Any, float | None]:
        """Decode and check a request: (InferRequest, client deadline s), or (error reply, None)."""
        if model != name or mv != "1":
            requests.count(model, 404)
            return (404, _error_body(f"unknown model {model!r} (this server serves {name!r})"), [], NAN), None
        try:
            enc = headers.get(b"content-encoding", b"identity")
            if enc == b"gzip":
                body = gzip.decompress(body)
            elif enc == b"deflate":
                body = zlib.decompress(body)
            elif enc != b"identity":
                raise CodecError(f"unsupported Content-Encoding {enc.decode('latin-1')!r}")
            hl = headers.get(_HEADER_KEY)
            req = decoder.decode(body, hl.decode("latin-1") if hl is not None else None)
            timeout_s = deadline_header(headers.get(_DEADLINE_KEY))
        except (CodecError, OSError, zlib.error) as e:
            requests.count(model, 400)
            return (400, _error_body(str(e)), [], NAN), None
        return req, timeout_s if timeout_s is not None else req.timeout_s

    def refused(e: RequestError) -> tuple[int, bytes, list, float]:
        requests.count(name, e.status)
        extra = [(b"content-type", b"application/json")]
        if e.retry_after_s is not None:
            extra.append((b"retry-after", str(max(1, math.ceil(e.retry_after_s))).encode()))
        return e.status, _error_body(str(e)), extra, NAN

    def answer(req: Any, res: InferResult, t0: float) -> tuple[int, bytes, list, float]:
        """The 200 reply (or 400 for an unknown requested output); counts and times it."""
        try:
            payload, hlen = encoder.encode(res.outputs, req, res.variant, res.slot_id, round(res.service_s * 1000, 3))
        except CodecError as e:
            requests.count(name, 400)
            return 400, _error_body(str(e)), [], NAN
        dt = time.perf_counter() - t0
        answered(dt)
        overhead.append(dt - res.service_s if dt > res.service_s else 0.0)
        if hlen is None:
            return 200, payload, [(b"content-type", b"application/json")], res.latency_s
        return (200, payload, [(b"content-type", b"application/octet-stream"), (_HEADER_KEY, str(hlen).encode())],
                res.latency_s)

    async def infer(model: str, mv: str, body: bytes, headers: dict[bytes, bytes]) -> tuple[int, bytes, list, float]:
        """One inference through the ASGI route: (status, body, extra headers, pool s or NaN)."""
        t0 = time.perf_counter()
        req, timeout_s = begin(model, mv, body, headers)
        if isinstance(req, tuple):
            return req
        try:
            res = await pool.submit_async(req.inputs, timeout_s)
        except RequestError as e:
            return refused(e)
        return answer(req, res, t0)

    def infer_now(model: str, mv: str, body: bytes, headers: dict[bytes, bytes], fast: FastRequest) -> None:
        """The same on the pool's loop by callbacks (:mod:`.fastpath`): ``fast`` goes to the pool
        as the inference's future (``done`` answers it), or is answered at once (bad request).
        A body whose header the decoder has a plan for skips ``begin`` (nothing there to check)."""
        t0 = time.perf_counter()
        hit = None
        if model == name and mv == "1" and b"content-encoding" not in headers and _DEADLINE_KEY not in headers:
            hit = decoder.planned(body, headers.get(_HEADER_KEY))
        if hit is not None:
            inputs, req = hit
            timeout_s = req.timeout_s
        else:
            req, timeout_s = begin(model, mv, body, headers)
            if isinstance(req, tuple):
                fast.reply(*req)
                return
            inputs = req.inputs
        fast.req = req
        fast.t0 = t0
        submit_to(inputs, timeout_s, fast)

    def done(fast: FastRequest, res: InferResult | None, exc: BaseException | None) -> None:
        """``answer`` for the callback path, writing the response (one call per answer)."""
        if res is None:
            fast.reply(*refused(exc if isinstance(exc, RequestError) else RequestError(500, f"internal error: {exc!r}")))
            return
        try:
            payload, hlen = encoder.encode(res.outputs, fast.req, res.variant, res.slot_id,
                                           round(res.service_s * 1000, 3))
        except CodecError as e:
            requests.count(name, 400)
            fast.reply(400, _error_body(str(e)), None, NAN)
            return
        dt = time.perf_counter() - fast.t0
        hist[bisect_left(bounds, dt)] += 1  # requests.answered(dt), inline
        requests.sum_s += dt
        overhead.append(dt - res.service_s if dt > res.service_s else 0.0)
        fast.reply(200, payload, _JSON_CT if hlen is None else _BINARY_CT % hlen, res.latency_s)

    overhead = app.state.overhead_s
    answered = requests.answered
    hist, bounds = requests.hist, requests.bounds
    records_append = app.state.server_records.append
    submit_to = pool.submit_fast
    # The callback path FrontEnd serves when it runs on the pool's loop (see fastpath).
    app.state.fast_protocol = protocol_for(infer_now, done, records_append)

    # Served outermost (FrontEnd), so an inference skips FastAPI's middleware stack entirely.
    app.state.asgi = _InferRoute(app, infer, record=app.state.server_records.append)

    @app.get("/metrics")
    async def metrics() -> Response:
        data = await asyncio.get_running_loop().run_in_executor(None, generate_latest, reg)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return app


class FrontEnd:
    """Runs the app under uvicorn: on ``loop`` (normally the worker pool's, so the infer handler
    and the dispatcher share one thread), else on a loop of its own in a background thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 loop: asyncio.AbstractEventLoop | None = None):
        self.app = app
        self.host = host
        self.port = port
        self.loop = loop
        self._server: Any = None
        self._done: Any = None  # concurrent future of the server's coroutine, or its thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> FrontEnd:
        import uvicorn

        from clover_rl.errors import BackendError

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listener says TCP; without it Nagle + delayed ACK add ~40 ms to every response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise BackendError(f"cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        self.port = sock.getsockname()[1]
        asgi = getattr(self.app.state, "asgi", self.app)
        # On the pool's loop the infer route is served by callbacks (fastpath); elsewhere by ASGI.
        fast = getattr(self.app.state, "fast_protocol", None) if self.loop is not None else None
        config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off", loop="auto",
                                http=fast or "httptools", timeout_keep_alive=30, backlog=2048, proxy_headers=False,
                                server_header=False, date_header=False)
        self._server = uvicorn.Server(config)
        if self.loop is not None:
            self._done = asyncio.run_coroutine_threadsafe(self._server.serve(sockets=[sock]), self.loop)
            alive = lambda: not self._done.done()  # noqa: E731
        else:
            self._done = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                          name="clover-frontend", daemon=True)
            self._done.start()
            alive = self._done.is_alive
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not alive() or time.monotonic() > deadline:
                raise BackendError(f"front end on {self.url} did not start")
            time.sleep(0.01)
        log.info("KServe v2 front end on %s", self.url)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, finish the responses under way, close connections."""
        if self._server is not None:
            self._server.should_exit = True
        done, self._done = self._done, None
        if isinstance(done, threading.Thread):
            done.join(timeout_s)
        elif done is not None:
            try:
                done.result(timeout_s)
            except Exception as e:  # timed out, or the loop went away: nothing more to wait for
                log.debug("front end stop: %s", e)


def serve_pool(pool: WorkerPool, meter: EnergyMeter | None = None, host: str = "127.0.0.1", port: int = 0,
               device: str = "cpu") -> FrontEnd:
    """Create the app for ``pool`` and start it; returns the running front end."""
    return FrontEnd(create_app(pool, meter, device=device), host, port, loop=pool.loop).start()


__all__ = ["FrontEnd", "PoolCollector", "ServerRecord", "create_app", "serve_pool"]
