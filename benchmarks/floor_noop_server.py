"""The floor under ``frontend_overhead.py``'s figures: the least a Python front end with the model
in a separate worker process can do per request, for the benchmark to compare with.

uvloop + httptools parser callbacks (the C pieces clover's front end runs on), the request's
binary part copied into a shared mapping, one small message to a worker process over a
socketpair, whose reply (one ``read``, one ``write``: no model, no decoding) is answered with a
ready-made v2 response -- what any design with a process per model slice pays in system calls,
wake-ups and the interpreter's dispatch of those callbacks, and nothing else: no admission
control, deadlines, metrics, decoding, checking or encoding. It serves only the benchmark's
request shape (``INPUT__0`` UINT8 [8, S, S, 3] -> ``OUTPUT__0`` FP32 [8, 1]).
Run: ``python benchmarks/floor_noop_server.py --port 8091`` (imports uvloop, httptools, numpy).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import socket
from collections import deque

import httptools
import uvloop

_OUT = json.dumps({"model_name": "efficientnet", "model_version": "1", "outputs": [
    {"name": "OUTPUT__0", "datatype": "FP32", "shape": [8, 1], "parameters": {"binary_data_size": 32}}]},
    separators=(",", ":")).encode()
_INFER = (b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ninference-header-content-length: %d\r\n"
          b"content-length: %d\r\n\r\n%s" % (len(_OUT), len(_OUT) + 32, _OUT + bytes(32)))
_READY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"ready\":true}"
_MSG = bytes(120)  # the size of clover's request message to a worker
_REPLY = bytes(110)  # ... and of a worker's reply


def echo(fd: int) -> None:
    """The worker: one read and one write per request."""
    got = 0
    while True:
        d = os.read(fd, 65536)
        if not d:
            os._exit(0)
        got += len(d)
        n, got = divmod(got, len(_MSG))
        if n:
            os.write(fd, _REPLY * n)


class Floor(asyncio.Protocol):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.url.endswith(b"/infer"):
            self.worker.send(self, b"".join(self.body) if len(self.body) > 1 else self.body[0])
        else:
            self.transport.write(_READY)  # type: ignore[attr-defined]


class Worker:
    """The worker's socket: requests out in order, replies matched to them in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.fd = fd
        self.waiting: deque[Floor] = deque()
        self.buf = b""
        self.map = mmap.mmap(-1, 1 << 22)
        loop.add_reader(fd, self.readable)

    def send(self, proto: Floor, body: bytes) -> None:
        self.map[:len(body)] = body  # the inputs, as clover's shared-memory transfer copies them
        self.waiting.append(proto)
        os.write(self.fd, _MSG)

    def readable(self) -> None:
        self.buf += os.read(self.fd, 65536)
        while len(self.buf) >= len(_REPLY):
            self.buf = self.buf[len(_REPLY):]
            self.waiting.popleft().transport.write(_INFER)  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    parent, child = socket.socketpair()
    if os.fork() == 0:
        parent.close()
        echo(child.fileno())
    child.close()
    loop = uvloop.new_event_loop()
    worker = Worker(loop, parent.fileno())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY on accept
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    server = loop.run_until_complete(loop.create_server(lambda: Floor(worker), sock=sock, backlog=2048))
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
