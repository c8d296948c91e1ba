"""The infer route served straight from the HTTP parser's callbacks, on the pool's event loop.

Why: with uvicorn's ASGI path every inference paid for a Task, a coroutine chain, an
``asyncio.Event``, ASGI message dicts and header re-validation -- about as much CPU as the rest
of the request together (measured: a bare uvicorn + httptools ASGI app costs ~2x the CPU per
request of the same parser driven by callbacks). Here ``POST /v2/models/{name}[/versions/{v}]
/infer`` is handled without any of that: the body is collected by the parser's callbacks, the
request is decoded and handed to the dispatcher with a callback (:class:`Reply`), and the
worker's answer -- read by the same loop from the worker's pipe -- is encoded and written to the
socket from that callback. No task, no future, no thread hop.

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

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("clover_rl.serving.live")

INFER_PATH = re.compile(rb"^/v2/models/([^/?#]+)(?:/versions/([^/?#]+))?/infer(?:\?.*)?$")
_JSON = b"content-type: application/json\r\n"

# handler(model, version, body, headers, reply) -> cancel callable or None; reply(status,
# payload, extra headers, pool seconds) is called exactly once, possibly before it returns.
Handler = Callable[[str, str, bytes, dict[bytes, bytes], Callable[..., None]], Any]


class _NoEvent:
    """Stands in for a cycle's ``message_event`` (uvicorn sets it on disconnect)."""

    def set(self) -> None:
        pass


class FastRequest:
    """One inference on a connection: looks enough like uvicorn's cycle (``response_complete``,
    ``keep_alive``, ``disconnected``, ``message_event``) for the protocol's own bookkeeping --
    pipelining, shutdown, disconnects -- to treat it as the request in progress."""

    __slots__ = ("body", "cancel", "disconnected", "keep_alive", "model", "proto", "response_complete", "t_accept",
                 "version")
    message_event = _NoEvent()

    def __init__(self, proto: InferProtocol, model: str, version: str, keep_alive: bool) -> None:
        self.proto = proto
        self.model = model
        self.version = version
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.response_complete = False
        self.disconnected = False
        self.cancel: Any = None  # from the handler: drops the request from the queue
        self.t_accept = time.perf_counter()  # headers complete

    def reply(self, status: int, payload: bytes, extra: list[tuple[bytes, bytes]] | None, pool_s: float) -> None:
        """Write the response (called once, by the handler or the dispatcher's callback)."""
        if self.response_complete:
            return
        self.response_complete = True
        proto = self.proto
        transport = proto.transport
        if transport.is_closing():  # the client left meanwhile
            return
        transport.write(b"%s%s%scontent-length: %d\r\n%s\r\n%s" % (
            STATUS_LINE[status], proto.default_headers,
            b"".join([b"%s: %s\r\n" % h for h in extra]) if extra else _JSON,
            len(payload), b"" if self.keep_alive else b"connection: close\r\n", payload))
        if not self.keep_alive:
            transport.close()
        proto.on_response_complete()
        if proto.record is not None:
            proto.record(status, self.t_accept, pool_s)


class InferProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the infer route served by callbacks (module docstring).

    Built per app by :func:`protocol_for`, which sets ``handler`` and ``record``."""

    handler: Handler
    record: Callable[[int, float, float], None] | None = None  # (status, t_accept, pool s)

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.default_headers = b"".join([b"%s: %s\r\n" % h for h in self.server_state.default_headers])

    def on_message_begin(self) -> None:
        # uvicorn's per-request state, less the ASGI scope (built only for requests that need it)
        self.fast: FastRequest | None = None
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        m = INFER_PATH.match(self.url) if self.parser.get_method() == b"POST" else None
        if m is None or self.pipeline or not (self.cycle is None or self.cycle.response_complete):
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()  # the scope, then what the parser has given since
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers
            super().on_headers_complete()
            return
        version = self.parser.get_http_version()
        keep_alive = version != "1.0" and self.parser.should_keep_alive()
        model = m.group(1).decode("latin-1")
        mv = m.group(2).decode("latin-1") if m.group(2) is not None else "1"
        self.fast = FastRequest(self, unquote(model) if "%" in model else model,
                                unquote(mv) if "%" in mv else mv, keep_alive)
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
            fast.cancel = self.handler(fast.model, fast.version, body, dict(self.headers), fast.reply)
        except Exception as e:  # a bug, not a bad request: answer 500, keep serving
            log.exception("infer handler failed")
            fast.reply(500, b'{"error": "internal error: %s"}' % type(e).__name__.encode(), None, float("nan"))

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        if isinstance(cycle, FastRequest) and not cycle.response_complete:
            cycle.disconnected = True
            if cycle.cancel is not None:
                cycle.cancel()
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


def protocol_for(handler: Handler, record: Callable[[int, float, float], None] | None = None) -> type[InferProtocol]:
    """An :class:`InferProtocol` class serving ``handler`` (for uvicorn's ``Config(http=...)``);
    ``record(status, t_accept, pool_s)`` is called after each response is written
    (``t_accept``: ``time.perf_counter()`` when the request's headers were complete)."""
    ns: dict[str, Any] = {"handler": staticmethod(handler),
                          "record": staticmethod(record) if record is not None else None}
    return type("BoundInferProtocol", (InferProtocol,), ns)


__all__ = ["INFER_PATH", "FastRequest", "InferProtocol", "protocol_for"]
