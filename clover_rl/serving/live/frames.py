"""Pickled messages over a worker's socket in ``multiprocessing.Connection``'s framing (a 4-byte
big-endian length, then the pickle), with one system call per message where it fits.

Why: ``Connection.send`` builds a ``ForkingPickler`` and a ``BytesIO`` per message and
``Connection.recv`` reads the length and the body in two system calls, through two more
``BytesIO``; on the request path of a no-op model that was ~20 us of the front end's CPU per
request and as much in the worker. The bytes on the wire are the same, so either end may still
use ``Connection.send``/``recv`` (start-up and control messages do).

:class:`FrameReader` reads ahead: it is for a peer that sends at most one message per message
it is sent (a worker serving one request at a time), since bytes it has buffered no longer
make the descriptor readable for an event loop.
"""
from __future__ import annotations

import os
import pickle
import struct
from typing import Any

_LEN = struct.Struct("!i")
READ_SIZE = 1 << 16


def send_frame(fd: int, msg: Any) -> None:
    """Pickle ``msg`` and write it as one frame (one ``write`` unless the socket takes less);
    OSError when the peer is gone."""
    data = pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
    if len(data) > 0x7fffffff:
        raise ValueError("message too large for a frame")
    buf = memoryview(_LEN.pack(len(data)) + data)
    while buf:
        buf = buf[os.write(fd, buf):]


class FrameReader:
    """Reads frames from ``fd`` (blocking), buffering what one read returns past a frame."""

    __slots__ = ("buf", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def recv(self) -> Any:
        """The next message; EOFError when the peer closed its end before a whole frame."""
        buf = self.buf
        while True:
            if len(buf) >= 4:
                end = 4 + _LEN.unpack_from(buf)[0]
                if len(buf) >= end:
                    self.buf = buf[end:]
                    return pickle.loads(memoryview(buf)[4:end])
            chunk = os.read(self.fd, READ_SIZE)
            if not chunk:
                self.buf = b""
                raise EOFError("peer closed the connection")
            buf = buf + chunk if buf else chunk
