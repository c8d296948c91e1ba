"""Loopback fakes of the carbon-intensity APIs, speaking each one's documented JSON.

Each fake is a real HTTP server on 127.0.0.1 (port 0) in a daemon thread, so the providers
are exercised through httpx exactly as in production, with no network. Faults are injected
per request (``fail_next``) or until cleared (``down``): an HTTP status, a delay longer than
the client timeout, a non-JSON body, or a JSON body of our choosing.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from typing_extensions import Self

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)


def iso(dt: datetime, millis: bool = False) -> str:
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return dt.strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class Fault:
    """What to do instead of answering normally; ``path`` limits it to one path prefix."""

    kind: str  # "status" | "sleep" | "body" | "json"
    arg: Any = None
    path: str = ""
    payload: Any = None  # the body of a "status" answer (default {"error": "injected N"})
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After, Date

    @staticmethod
    def status(code: int, path: str = "", payload: Any = None,
               headers: dict[str, str] | None = None) -> Fault:
        return Fault("status", code, path, payload, dict(headers or {}))

    @staticmethod
    def sleep(seconds: float, path: str = "") -> Fault:
        return Fault("sleep", seconds, path)

    @staticmethod
    def body(text: str, path: str = "") -> Fault:
        return Fault("body", text, path)

    @staticmethod
    def json(obj: Any, path: str = "") -> Fault:
        return Fault("json", obj, path)


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeApi:
    """Base fake: routing, request log, fault injection. Subclasses implement ``answer``."""

    requests: list[Request] = field(default_factory=list)
    fail_next: deque[Fault] = field(default_factory=deque)
    down: Fault | None = None

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._dispatch(self)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and hung up is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def hits(self, prefix: str) -> int:
        return sum(r.path.startswith(prefix) for r in self.requests)

    # -- plumbing ------------------------------------------------------------------------
    def _fault_for(self, path: str) -> Fault | None:
        if self.fail_next and path.startswith(self.fail_next[0].path):
            return self.fail_next.popleft()
        if self.down is not None and path.startswith(self.down.path):
            return self.down
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        req = Request(path, query, {k.lower(): v for k, v in h.headers.items()})
        self.requests.append(req)
        fault = self._fault_for(path)
        if fault is not None and fault.kind == "sleep":
            time.sleep(fault.arg)
            fault = None
        if fault is None:
            status, body = self.answer(req)
        elif fault.kind == "status":
            status = fault.arg
            body = fault.payload if fault.payload is not None else {"error": f"injected {fault.arg}"}
        elif fault.kind == "body":
            status, body = 200, fault.arg
        else:
            status, body = 200, fault.arg
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            for k, v in (fault.headers if fault is not None else {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(raw)
        except OSError:
            pass

    def answer(self, req: Request) -> tuple[int, Any]:
        raise NotImplementedError


# -- Electricity Maps v3 -----------------------------------------------------------------
@dataclass
class ElectricityMapsFake(FakeApi):
    """``/v3/carbon-intensity/latest`` and ``/forecast`` behind an ``auth-token`` header."""

    token: str = "em-token"
    zone: str = "DE"
    latest: float = 300.0
    latest_time: datetime = T0
    forecast: list[float] = field(default_factory=lambda: [310.0 + 10 * i for i in range(24)])

    def answer(self, req: Request) -> tuple[int, Any]:
        if req.headers.get("auth-token") != self.token:
            return 401, {"status": "error", "message": "Invalid auth-token"}
        if req.query.get("zone") != self.zone:
            return 404, {"status": "error", "message": f"Zone '{req.query.get('zone')}' "
                                                       "does not exist."}
        updated = iso(self.latest_time + timedelta(minutes=5), millis=True)
        if req.path == "/v3/carbon-intensity/latest":
            return 200, {"zone": self.zone, "carbonIntensity": self.latest,
                         "datetime": iso(self.latest_time, millis=True),
                         "updatedAt": updated, "createdAt": updated,
                         "emissionFactorType": "lifecycle", "isEstimated": False,
                         "estimationMethod": None}
        if req.path == "/v3/carbon-intensity/forecast":
            rows = [{"carbonIntensity": v,
                     "datetime": iso(self.latest_time + timedelta(hours=i + 1), millis=True)}
                    for i, v in enumerate(self.forecast)]
            return 200, {"zone": self.zone, "forecast": rows, "updatedAt": updated}
        return 404, {"status": "error", "message": "not found"}


# -- WattTime v3 ---------------------------------------------------------------------------
@dataclass
class WattTimeFake(FakeApi):
    """``/login`` (basic auth -> token) and ``/v3/forecast`` (bearer) in lbs CO2/MWh."""

    username: str = "wt-user"
    password: str = "wt-pass"
    region: str = "CAISO_NORTH"
    units: str = "lbs_co2_per_mwh"
    start: datetime = T0
    hours: int = 24
    base_lbs: float = 1000.0  # value at start; +1 lb/MWh per 5-minute step
    valid_tokens: set[str] = field(default_factory=set)
    issued: int = 0

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def value(self, step: int) -> float:
        return self.base_lbs + step

    def answer(self, req: Request) -> tuple[int, Any]:
        if req.path == "/login":
            expected = "Basic " + base64.b64encode(
                f"{self.username}:{self.password}".encode()).decode()
            if req.headers.get("authorization") != expected:
                return 401, {"error": "invalid credentials"}
            self.issued += 1
            token = f"jwt-{self.issued}"
            self.valid_tokens.add(token)
            return 200, {"token": token}
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid_tokens:
            return 401, {"error": "Token has expired"}
        if req.path == "/v3/forecast":
            if req.query.get("region") != self.region:
                return 400, {"error": "unknown region"}
            n = self.hours * 12
            data = [{"point_time": (self.start + timedelta(minutes=5 * i)).isoformat(),
                     "value": self.value(i)} for i in range(n)]
            return 200, {"data": data, "meta": {
                "data_point_period_seconds": 300, "region": self.region,
                "warnings": [], "signal_type": req.query.get("signal_type"),
                "model": {"date": "2026-03-01"}, "units": self.units,
                "generated_at_period_seconds": 300,
                "generated_at": self.start.isoformat()}}
        return 404, {"error": "not found"}


# -- GB Carbon Intensity API -------------------------------------------------------------
@dataclass
class UkGridFake(FakeApi):
    """National ``/intensity`` (+ ``fw24h``) and regional ``/regional/...`` endpoints."""

    now: datetime = T0
    actual: float | None = 250.0
    forecast_now: float = 260.0
    regional_now: float = 120.0

    def half_hours(self, start: datetime, n: int, base: float) -> list[dict[str, Any]]:
        return [{"from": iso(start + timedelta(minutes=30 * i)),
                 "to": iso(start + timedelta(minutes=30 * (i + 1))),
                 "intensity": {"forecast": base + 2 * i, "actual": None,
                               "index": "moderate"}} for i in range(n)]

    def answer(self, req: Request) -> tuple[int, Any]:
        parts = [p for p in req.path.split("/") if p]
        if parts == ["intensity"]:
            return 200, {"data": [{"from": iso(self.now),
                                   "to": iso(self.now + timedelta(minutes=30)),
                                   "intensity": {"forecast": self.forecast_now,
                                                 "actual": self.actual,
                                                 "index": "moderate"}}]}
        if len(parts) == 3 and parts[0] == "intensity" and parts[2] == "fw24h":
            start = datetime.strptime(parts[1], "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc)
            return 200, {"data": self.half_hours(start, 48, self.forecast_now)}
        if parts[:2] == ["regional", "regionid"] and len(parts) == 3:
            rid = int(parts[2])
            return 200, {"data": [{"regionid": rid, "dnoregion": "UKPN London",
                                   "shortname": "London", "data": [{
                                       "from": iso(self.now),
                                       "to": iso(self.now + timedelta(minutes=30)),
                                       "intensity": {"forecast": self.regional_now,
                                                     "index": "low"},
                                       "generationmix": [{"fuel": "wind", "perc": 40.0}]}]}]}
        if (len(parts) == 6 and parts[:2] == ["regional", "intensity"]
                and parts[3:5] == ["fw24h", "regionid"]):
            start = datetime.strptime(parts[2], "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc)
            rows = self.half_hours(start, 48, self.regional_now)
            for r in rows:
                r["intensity"].pop("actual")
            return 200, {"data": {"regionid": int(parts[5]), "dnoregion": "UKPN London",
                                  "shortname": "London", "data": rows}}
        return 400, {"error": {"code": "400 Bad Request", "message": "Please verify the URL"}}


class Ticker:
    """Fake ``time.monotonic`` + ``time.sleep``: sleeping advances the clock instantly."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds
