"""Worker-socket framing (frames.py), the shared-memory input transfer and the request metrics
collector: the pieces of the request path that replaced library calls for speed must behave as
the calls they replaced."""
from __future__ import annotations

import os
import socket
import threading
from multiprocessing.connection import Connection

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from clover_rl.serving.live.collectors import RequestMetrics
from clover_rl.serving.live.frames import FrameReader, send_frame
from clover_rl.serving.live.worker import SHARED_MIN_BYTES, _SharedReader, _SharedWriter


def _pair() -> tuple[Connection, Connection]:
    a, b = socket.socketpair()
    return Connection(a.detach()), Connection(b.detach())


def test_frames_interoperate_with_connection() -> None:
    a, b = _pair()
    msg = ("infer", 7, {"x": np.arange(5)}, None)
    send_frame(a.fileno(), msg)
    got = b.recv()  # Connection reads our frames...
    assert got[:2] == ("infer", 7) and got[2]["x"].tolist() == [0, 1, 2, 3, 4]
    b.send(("done", 7))  # ...and we read its frames
    assert FrameReader(a.fileno()).recv() == ("done", 7)


def test_frame_reader_splits_joined_and_partial_frames() -> None:
    a, b = _pair()
    reader = FrameReader(b.fileno())
    big = bytes(range(256)) * 1000  # 256 kB: larger than one read and the socket's buffer
    t = threading.Thread(target=lambda: [send_frame(a.fileno(), m) for m in (1, big, "three")])
    t.start()
    assert reader.recv() == 1 and reader.recv() == big and reader.recv() == "three"
    t.join()
    os.write(a.fileno(), b"\0\0\0\x10abc")  # a frame cut short by the peer's exit
    a.close()
    with pytest.raises(EOFError):
        reader.recv()


def test_shared_inputs_round_trip_inline_and_grown() -> None:
    w, r = _SharedWriter(), _SharedReader()
    if not w.enabled:
        pytest.skip("no writable /dev/shm")
    small = np.arange(3, dtype=np.int64)
    a = np.arange(SHARED_MIN_BYTES, dtype=np.uint8)
    b = np.arange(600_000, dtype=np.float32)[::2]  # not contiguous; with `a`, past the first 1 MB buffer
    names = np.array([b"q"], dtype=np.object_)
    try:
        inline, shared = w.put({"small": small, "a": a, "b": b, "names": names})
        assert set(inline) == {"small", "names"} and shared is not None
        got = r.arrays(shared, dict(inline))
        assert set(got) == {"small", "a", "b", "names"}
        np.testing.assert_array_equal(got["a"], a)
        np.testing.assert_array_equal(got["b"], b)
        inline, shared = w.put({"small": small})
        assert shared is None and inline["small"] is small
    finally:
        got = None
        w.close()


def test_request_metrics_expose_what_prometheus_client_would() -> None:
    buckets = (0.001, 0.005, 0.1)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    m = RequestMetrics("svc", buckets)
    ours.register(m)
    c = Counter("clover_requests", "Inference requests by final status", ["model", "status"], registry=theirs)
    h = Histogram("clover_request_latency_seconds", "Front-end latency of answered requests", ["model"],
                  buckets=buckets, registry=theirs)
    h.labels("svc")
    for dt in (0.0005, 0.001, 0.003, 0.005, 0.05, 2.0):  # bounds included in their bucket (le)
        m.answered(dt)
        c.labels("svc", "200").inc()
        h.labels("svc").observe(dt)
    for model, status in (("svc", 503), ("svc", 503), ("other", 404)):
        m.count(model, status)
        c.labels(model, str(status)).inc()

    def samples(reg: CollectorRegistry) -> set[str]:
        return {ln for ln in generate_latest(reg).decode().splitlines()
                if ln and not ln.startswith("#") and "_created" not in ln}

    assert samples(ours) == samples(theirs)
    assert 'clover_request_latency_seconds_bucket{le="0.005",model="svc"} 4.0' in samples(ours)
