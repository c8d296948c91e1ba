"""The infer route served straight from the HTTP parser's callbacks, on the pool's event loop.

Why: with uvicorn's ASGI path every inference paid for a Task, a coroutine chain, an
``asyncio.Event``, ASGI message dicts and header re-validation -- about as much CPU as the rest
of the request together (measured: a bare uvicorn + httptools ASGI app costs ~2x the CPU per
request of the same parser driven by callbacks). Here ``POST /v2/models/{name}[/versions/{v}]
/infer`` is handled without any of that: the body is collected by the parser's callbacks, the
request is decoded and handed to the dispatcher with the :class:`FastRequest` itself as its
future, and the worker's answer -- read by the same loop from the worker's pipe -- is encoded and
written to the socket from its ``set_result``. No task, no future, no thread hop. Header lines
reach a dict's ``__setitem__`` straight from the parser (no Python call per line), so a
header repeated in one request keeps its last value (uvicorn's list kept each).

Everything else (other routes, a request pipelined behind an unanswered one on the same
connection, WebSocket upgrades) goes through uvicorn's own protocol and the ASGI app unchanged:
:class:`InferProtocol` subclasses uvicorn's ``HttpToolsProtocol`` and intercepts only the hot
route. Keep-alive, ``Expect: 100-continue``, ``Connection: close``, graceful shutdown (an
unanswered inference is answered, then the connection closes) behave as in uvicorn. A client
that disconnects cancels its queued request (it never reaches a worker).
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from clover_rl.serving.live.requests import ServerRecord

log = logging.getLogger("clover_rl.serving.live")

INFER_PATH = re.compile(rb"^/v2/models/([^/?#]+)(?:/versions/([^/?#]+))?/infer(?:\?.*)?$")
_JSON = b"content-type: application/json\r\n"
_ROUTES_MAX = 256

# handler(model, version, body, headers, request) -> None (or a cancel callable): ends the request
# with request.reply(...) or passes it to the pool as the future of the inference, whose
# set_result/set_exception call the protocol's ``done(request, result, exc)``.
Handler = Callable[[str, str, bytes, dict[bytes, bytes], "FastRequest"], Any]
Done = Callable[["FastRequest", Any, BaseException | None], None]


class _NoEvent:
    """Stands in for a cycle's ``message_event`` (uvicorn sets it on disconnect)."""

    def set(self) -> None:
        pass


class FastRequest:
    """One inference on a connection: looks enough like uvicorn's cycle (``response_complete``,
    ``keep_alive``, ``disconnected``, ``message_event``) for the protocol's own bookkeeping --
    pipelining, shutdown, disconnects -- to treat it as the request in progress, and like a
    future (``done``, ``set_result``, ``set_exception``) to the worker pool, which ends it once.
    ``req`` and ``t0`` are the handler's (the decoded request and when it began)."""

    __slots__ = ("body", "disconnected", "ended", "headers", "keep_alive", "model", "on_cancel", "proto", "req",
                 "response_complete", "t0", "t_accept", "version")
    message_event = _NoEvent()

    def __init__(self, proto: InferProtocol, model: str, version: str, keep_alive: bool) -> None:
        self.proto = proto
        self.model = model
        self.version = version
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.headers: dict[bytes, bytes] = {}
        self.response_complete = False
        self.disconnected = False
        self.ended = False  # the pool has ended it, or the client left (the pool then skips it)
        self.on_cancel: Any = None  # a handler's cancel callable, if it returned one
        self.req: Any = None
        self.t0 = self.t_accept = time.perf_counter()  # headers complete

    # the future the pool ends
    def done(self) -> bool:
        return self.ended

    def set_result(self, result: Any) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self.proto.done(self, result, None)
        except Exception as e:  # a bug in the answer must neither stop the pool nor hang the client
            self._failed(e)

    def set_exception(self, exc: BaseException) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self.proto.done(self, None, exc)
        except Exception as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        log.exception("infer answer failed")
        self.reply(500, b'{"error": "internal error: %s"}' % type(e).__name__.encode(), None, float("nan"))

    def reply(self, status: int, payload: bytes, extra: bytes | list[tuple[bytes, bytes]] | None,
              pool_s: float) -> None:
        """Write the response (once). ``extra``: header lines (bytes, each ending in CRLF, or
        (name, value) pairs); None = JSON content type."""
        if self.response_complete:
            return
        self.response_complete = True
        proto = self.proto
        transport = proto.transport
        if transport.is_closing():  # the client left meanwhile
            return
        if extra is None:
            extra = _JSON
        elif type(extra) is not bytes:
            extra = b"".join([b"%s: %s\r\n" % h for h in extra])
        transport.write(b"%s%s%scontent-length: %d\r\n%s\r\n%s" % (
            STATUS_LINE[status], proto.default_headers, extra, len(payload),
            b"" if self.keep_alive else b"connection: close\r\n", payload))
        if not self.keep_alive:
            transport.close()
        proto.on_response_complete()
        if proto.record is not None:
            now = time.perf_counter()
            proto.record(tuple.__new__(ServerRecord, (status, now, now - self.t_accept, pool_s)))


class InferProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the infer route served by callbacks (module docstring).

    Built per app by :func:`protocol_for`, which sets ``handler``, ``done`` and ``record``."""

    handler: Handler
    done: Done
    record: Callable[[ServerRecord], None] | None = None  # e.g. a deque's append
    routes: dict[bytes, tuple[str, str] | None]  # url -> (model, version), None: not the infer route

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.raw_headers: dict[bytes, bytes] = {}
        # before the parser is made (in uvicorn's __init__): httptools takes on_header from here
        self.on_header = self.raw_headers.__setitem__  # type: ignore[method-assign]
        super().__init__(*args, **kwargs)

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.default_headers = b"".join([b"%s: %s\r\n" % h for h in self.server_state.default_headers])

    def data_received(self, data: bytes) -> None:
        self._idle_since = None  # uvicorn's, less a call per read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        # uvicorn's per-request state, less the ASGI scope (built only for requests that need it)
        self.fast: FastRequest | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []  # uvicorn's (its upgrade check reads it): filled on fallback
        self.raw_headers.clear()

    def _route(self) -> tuple[str, str] | None:
        m = INFER_PATH.match(self.url)
        if m is None:
            route = None
        else:
            model = m.group(1).decode("latin-1")
            mv = m.group(2).decode("latin-1") if m.group(2) is not None else "1"
            route = (unquote(model) if "%" in model else model, unquote(mv) if "%" in mv else mv)
        if len(self.routes) < _ROUTES_MAX and b"?" not in self.url:
            self.routes[self.url] = route
        return route

    def on_headers_complete(self) -> None:
        headers: dict[bytes, bytes] = {}
        for k, v in self.raw_headers.items():  # names lower-cased, as uvicorn gives them
            headers[k.lower()] = v
        expect = headers.get(b"expect")
        self.expect_100_continue = expect is not None and expect.lower() == b"100-continue"
        route = self.routes[self.url] if self.url in self.routes else self._route()
        if (route is None or self.parser.get_method() != b"POST" or self.pipeline
                or not (self.cycle is None or self.cycle.response_complete)):
            url, expect_100 = self.url, self.expect_100_continue
            super().on_message_begin()  # the scope, then what the parser has given since
            self.url, self.expect_100_continue = url, expect_100
            self.headers = self.scope["headers"] = list(headers.items())
            super().on_headers_complete()
            return
        keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() != "1.0"
        self.fast = FastRequest(self, route[0], route[1], keep_alive)
        self.fast.headers = headers
        self.cycle = self.fast  # type: ignore[assignment]  # the request in progress
        if self.expect_100_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.fast is not None:
            self.fast.body.append(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        fast = self.fast
        if fast is None:
            super().on_message_complete()
            return
        self.fast = None
        body = fast.body[0] if len(fast.body) == 1 else b"".join(fast.body)
        fast.body = []
        try:
            fast.on_cancel = self.handler(fast.model, fast.version, body, fast.headers, fast)
        except Exception as e:  # a bug, not a bad request: answer 500, keep serving
            log.exception("infer handler failed")
            fast.ended = True
            fast.reply(500, b'{"error": "internal error: %s"}' % type(e).__name__.encode(), None, float("nan"))

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        if isinstance(cycle, FastRequest) and not cycle.response_complete:
            cycle.disconnected = True
            cycle.ended = True  # the pool skips it
            if cycle.on_cancel is not None:
                cycle.on_cancel()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    # Keep-alive: uvicorn cancels its idle timer on every read and arms a new one after every
    # response (a timer per request). Here one timer per connection, when it fires, checks how
    # long the connection has really been idle; same timeout, same close.
    _idle_since: float | None = None

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request (queued behind this one) starts now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        idle = self._idle_since
        if idle is None:  # a request is in progress: its response arms the timer again
            return
        left = idle + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()


def protocol_for(handler: Handler, done: Done, record: Callable[[ServerRecord], None] | None = None
                 ) -> type[InferProtocol]:
    """An :class:`InferProtocol` class serving ``handler`` (for uvicorn's ``Config(http=...)``);
    ``done(request, result, exc)`` answers a request the pool has ended; ``record`` gets a
    :class:`ServerRecord` after each response is written (latency from when the request's
    headers were complete)."""
    ns: dict[str, Any] = {"handler": staticmethod(handler), "done": staticmethod(done), "routes": {},
                          "record": staticmethod(record) if record is not None else None}
    return type("BoundInferProtocol", (InferProtocol,), ns)


__all__ = ["INFER_PATH", "FastRequest", "InferProtocol", "protocol_for"]
