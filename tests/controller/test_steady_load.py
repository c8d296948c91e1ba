"""The deploy load generator offers a scenario's workload (recorded arrivals or rates)."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clover_rl.controller.load import SteadyLoad
from clover_rl.errors import ConfigError
from clover_rl.services import load_service
from clover_rl.workload import workload_from_config


class _Ok(BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server():
    _Ok.hits = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_recorded_arrivals_are_replayed(server, tmp_path):
    p = tmp_path / "req.csv"
    # 12 requests in the first 0.6 s, then nothing until 10 s
    rows = ["TIMESTAMP,ContextTokens"] + [f"{0.05 * i:.2f},1" for i in range(12)] + ["10.0,1"]
    p.write_text("\n".join(rows) + "\n")
    w = workload_from_config({"kind": "trace", "path": str(p), "format": "requests"})
    load = SteadyLoad(server, load_service("efficientnet"), w, image_size=8).start()
    time.sleep(1.5)
    totals = load.stop(drain_timeout_s=5)
    assert totals.sent == 12 and totals.ok == 12 and totals.lost == 0
    assert _Ok.hits == 12


def test_rate_and_bad_rate(server):
    with pytest.raises(ConfigError, match="positive request rate"):
        SteadyLoad(server, load_service("efficientnet"), 0.0)
    load = SteadyLoad(server, load_service("efficientnet"), 40.0, image_size=8).start()
    time.sleep(1.0)
    totals = load.stop(drain_timeout_s=5)
    assert 10 <= totals.sent <= 90 and totals.lost == 0
