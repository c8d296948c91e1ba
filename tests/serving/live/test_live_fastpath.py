"""The infer route served by parser callbacks (fastpath) over real worker processes, spoken to
over raw sockets: pipelined requests answered in order, ``Expect: 100-continue``,
``Connection: close`` / HTTP/1.0, a client that leaves cancels its queued request, and an
exception in the handler is a 500, not a hung connection."""
from __future__ import annotations

import json
import socket
import time

import pytest

from clover_rl.serving.live.backend import LiveBackend
from clover_rl.serving.live.fastpath import InferProtocol
from tests.support.live import noop_backend

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]

PATH = "/v2/models/efficientnet/infer"


@pytest.fixture(scope="module")
def backend():
    with noop_backend("7g:b1", delay_ms=150) as b:  # one 7g worker: a request holds it 150 ms
        yield b


def _body(rid: str) -> bytes:
    return json.dumps({"id": rid, "inputs": [{"name": "INPUT__0", "datatype": "UINT8", "shape": [1, 2, 2, 3],
                                               "data": [0] * 12}]}).encode()


def _request(rid: str, extra: str = "", version: str = "1.1") -> bytes:
    body = _body(rid)
    return (f"POST {PATH} HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body


def _read_response(s: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from ``s`` (``buf`` keeps what belongs to the next one)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed before a response"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    n = int(headers.get("content-length", 0))
    while len(rest) < n:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    buf[:] = rest[n:]
    return status, headers, rest[:n]


def _after_continue(s: socket.socket, buf: bytearray, body: bytes, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send the request line and ``head`` (``{length}`` -> a content-length line, ``{n}`` -> the
    body's length), expect ``100 Continue``, then send ``body``; the response."""
    s.sendall((f"POST {PATH} HTTP/1.1\r\n" + head.format(length=f"content-length: {len(body)}\r\n", n=len(body))
               + "\r\n").encode())
    while b"\r\n\r\n" not in buf:
        buf += s.recv(1024)
    assert bytes(buf).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    del buf[:len(b"HTTP/1.1 100 Continue\r\n\r\n")]
    s.sendall(body)
    return _read_response(s, buf)


def _connect(backend: LiveBackend) -> socket.socket:
    host, port = backend.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def test_the_callback_protocol_serves_the_pool_loop(backend: LiveBackend) -> None:
    assert issubclass(backend.frontend._server.config.http_protocol_class, InferProtocol)


def test_pipelined_requests_are_answered_in_order(backend: LiveBackend) -> None:
    with _connect(backend) as s:
        get = b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n"
        s.sendall(_request("a") + get + _request("b") + _request("c"))
        buf = bytearray()
        first = _read_response(s, buf)
        assert first[0] == 200 and json.loads(first[2])["id"] == "a"
        live = _read_response(s, buf)
        assert live[0] == 200 and json.loads(live[2]) == {"live": True}
        for rid in ("b", "c"):
            status, _, body = _read_response(s, buf)
            assert status == 200 and json.loads(body)["id"] == rid


def test_expect_100_continue_and_keep_alive(backend: LiveBackend) -> None:
    with _connect(backend) as s:
        buf = bytearray()
        status, headers, out = _after_continue(s, buf, _body("e"), "host: x\r\n{length}expect: 100-continue\r\n")
        assert status == 200 and json.loads(out)["id"] == "e" and "connection" not in headers
        s.sendall(_request("again"))  # the connection stays open for the next request
        assert _read_response(s, buf)[0] == 200


def test_header_names_are_matched_in_any_case(backend: LiveBackend) -> None:
    """Header lines reach the fast path through a dict (fastpath.InferProtocol): names are
    still matched without regard to case, as uvicorn's lower-cased list was."""
    with _connect(backend) as s:
        status, _, out = _after_continue(s, bytearray(), _body("c"), "Host: x\r\nContent-Length: {n}\r\n"
                                         "EXPECT: 100-Continue\r\nX-Request-Timeout-Ms: soon\r\n")
        assert status == 400 and "X-Request-Timeout-Ms" in json.loads(out)["error"]


@pytest.mark.parametrize("version, extra", [("1.1", "connection: close\r\n"), ("1.0", "")])
def test_connection_close_is_honoured(backend: LiveBackend, version: str, extra: str) -> None:
    with _connect(backend) as s:
        s.sendall(_request("z", extra, version))
        buf = bytearray()
        status, headers, _ = _read_response(s, buf)
        assert status == 200 and headers["connection"] == "close"
        assert s.recv(1024) == b""  # closed by the server


def test_errors_come_back_on_the_fast_path(backend: LiveBackend) -> None:
    with _connect(backend) as s:
        buf = bytearray()
        s.sendall(b"POST /v2/models/nope/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        status, _, body = _read_response(s, buf)
        assert status == 404 and "unknown model 'nope'" in json.loads(body)["error"]
        s.sendall(f"POST {PATH} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n[1,2]".encode())
        status, _, body = _read_response(s, buf)
        assert status == 400 and "inputs" in json.loads(body)["error"]


def test_a_client_that_leaves_never_reaches_a_worker(backend: LiveBackend) -> None:
    slot = backend.pool.snapshot().slots[0]
    served0 = slot.served
    with _connect(backend) as busy:
        busy.sendall(_request("busy"))  # holds the only worker 150 ms
        time.sleep(0.03)
        gone = _connect(backend)
        gone.sendall(_request("gone"))  # queued behind it...
        time.sleep(0.03)
        gone.close()  # ...and its client leaves
        buf = bytearray()
        assert _read_response(busy, buf)[0] == 200
        time.sleep(0.4)
        busy.sendall(_request("after"))
        assert _read_response(busy, buf)[0] == 200
    assert backend.pool.snapshot().slots[0].served == served0 + 2  # "gone" was never served


def test_a_handler_crash_is_a_500_not_a_hang(backend: LiveBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    proto = backend.frontend._server.config.http_protocol_class

    def boom(*a: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(proto, "handler", staticmethod(boom))
    with _connect(backend) as s:
        s.sendall(_request("x"))
        status, _, body = _read_response(s, bytearray())
        assert status == 500 and "RuntimeError" in json.loads(body)["error"]


def test_keep_alive_closes_only_idle_connections(backend: LiveBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend.frontend._server.config, "timeout_keep_alive", 0.5)
    with _connect(backend) as s:
        buf = bytearray()
        for i in range(4):  # busy for ~1.2 s, never idle for 0.5 s: stays open
            s.sendall(_request(f"k{i}"))
            assert _read_response(s, buf)[0] == 200
            time.sleep(0.15)
        time.sleep(1.0)  # idle past the timeout: the server closes it
        s.settimeout(2.0)
        assert s.recv(1024) == b""
