"""KServe v2 front end over real worker processes: health/metadata, tritonclient.http,
ALBERT BYTES inputs, error statuses, Prometheus metrics, and LiveBackend.run metrics."""
from __future__ import annotations

import httpx
import numpy as np
import pytest

from clover_rl.mig.config import parse_configuration
from clover_rl.serving.backend import Backend
from clover_rl.serving.live.backend import LiveBackend
from tests.support.live import GPU, noop_backend, noop_service, tiny_albert

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def backend():
    with noop_backend("4g:b1,3g:b7", delay_ms=2) as b:
        yield b


def test_health_and_metadata(backend: LiveBackend) -> None:
    u = backend.url
    assert httpx.get(f"{u}/v2/health/live").status_code == 200
    assert httpx.get(f"{u}/v2/health/ready").status_code == 200
    assert httpx.get(f"{u}/v2/models/efficientnet/ready").status_code == 200
    md = httpx.get(f"{u}/v2/models/efficientnet").json()
    assert md["name"] == "efficientnet" and md["versions"] == ["1"]
    assert md["inputs"] == [{"name": "INPUT__0", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    assert md["outputs"][0]["name"] == "OUTPUT__0"
    r = httpx.get(f"{u}/v2/models/resnet")
    assert r.status_code == 404 and "unknown model 'resnet'" in r.json()["error"]
    assert "binary_tensor_data" in httpx.get(f"{u}/v2").json()["extensions"]


def test_tritonclient_http(backend: LiveBackend) -> None:
    import tritonclient.http as th

    c = th.InferenceServerClient(backend.url.removeprefix("http://"))
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("efficientnet")
    assert c.get_model_metadata("efficientnet")["inputs"][0]["datatype"] == "UINT8"
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    for binary in (True, False):
        inp = th.InferInput("INPUT__0", list(x.shape), "UINT8")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = th.InferRequestedOutput("OUTPUT__0", binary_data=binary)
        r = c.infer("efficientnet", [inp], outputs=[out], request_id=f"req-{binary}")
        assert r.get_response()["id"] == f"req-{binary}"
        assert r.as_numpy("OUTPUT__0").shape == (8, 1)
        assert r.get_response()["parameters"]["variant"] in ("b1", "b7")
    with pytest.raises(th.InferenceServerException, match="must be UINT8"):
        bad = th.InferInput("INPUT__0", [1, 2, 2, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 2, 2, 3), np.float32))
        c.infer("efficientnet", [bad])
    c.close()


def test_every_error_is_a_v2_body_tritonclient_can_read(backend: LiveBackend) -> None:
    import tritonclient.http as th

    u = backend.url
    for method, path, status in [("GET", "/v2/nowhere", 404), ("GET", "/", 404), ("DELETE", "/v2/health/live", 405),
                                 ("POST", "/v2/models/efficientnet", 405), ("GET", "/v2/models/efficientnet/infer", 405)]:
        r = httpx.request(method, f"{u}{path}")
        assert r.status_code == status and set(r.json()) == {"error"}, (method, path, r.text)
        if status == 405:
            assert r.headers["allow"]
    app = backend.frontend.app

    @app.get("/test-only/{n}")
    async def typed(n: int) -> dict:  # a route with a typed parameter: FastAPI validation (422)
        return {"n": n}

    r = httpx.get(f"{u}/test-only/abc")
    assert r.status_code == 422 and set(r.json()) == {"error"} and "path.n" in r.json()["error"]
    c = th.InferenceServerClient(u.removeprefix("http://"))
    with pytest.raises(th.InferenceServerException, match="unknown model 'resnet'"):
        c.get_model_metadata("resnet")
    x = np.zeros((1, 4, 4, 3), np.uint8)
    inp = th.InferInput("INPUT__0", list(x.shape), "UINT8")
    inp.set_data_from_numpy(x)
    for kwargs, needle in [({"priority": 2}, "unsupported parameter 'priority'"),
                           ({"sequence_id": 7}, "'sequence_id', 'sequence_start', 'sequence_end'"),
                           ({"parameters": {"temperature": 1}}, "unsupported parameter 'temperature'"),
                           ({"outputs": [th.InferRequestedOutput("OUTPUT__0", class_count=3)]},
                            "output 'OUTPUT__0': unsupported parameter 'classification'")]:
        with pytest.raises(th.InferenceServerException, match=needle) as e:
            c.infer("efficientnet", [inp], **kwargs)
        assert e.value.status() == "400"
    shm = th.InferInput("INPUT__0", list(x.shape), "UINT8")
    shm.set_shared_memory("region0", x.nbytes)
    with pytest.raises(th.InferenceServerException, match="shared-memory extension is not supported"):
        c.infer("efficientnet", [shm])
    with pytest.raises(th.InferenceServerException, match="'timeout' must be a positive integer"):
        c.infer("efficientnet", [inp], timeout=-5)
    assert c.infer("efficientnet", [inp], timeout=30_000_000).as_numpy("OUTPUT__0").shape == (1, 1)
    c.close()


def test_json_infer_and_errors(backend: LiveBackend) -> None:
    u = backend.url
    body = {"id": "42", "inputs": [{"name": "INPUT__0", "shape": [1, 2, 2, 3], "datatype": "UINT8", "data": list(range(12))}]}
    r = httpx.post(f"{u}/v2/models/efficientnet/infer", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["id"] == "42" and out["model_name"] == "efficientnet"
    assert out["outputs"] == [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [1, 1], "data": [0.0]}]
    r = httpx.post(f"{u}/v2/models/efficientnet/infer", content=b"{oops")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    body["inputs"][0]["shape"] = [1, 2, 2]
    r = httpx.post(f"{u}/v2/models/efficientnet/infer", json=body)
    assert r.status_code == 400 and "do not fill shape" in r.json()["error"]


def test_run_metrics_and_prometheus(backend: LiveBackend) -> None:
    assert isinstance(backend, Backend) and backend.name == "live"
    m = backend.run(1.5, 40.0)
    assert m.backend == "live" and m.estimated  # CPU host without RAPL: estimated energy
    assert m.arrived > 20 and m.served == m.arrived and m.dropped == 0
    assert 0 < m.p50_ms <= m.p95_ms <= m.p99_ms < 10_000  # answered, not timed out (a shared host is slow)
    assert m.latency == "server"  # front end in -> response out; the client's figure beside it
    assert m.extra["client_p95_ms"] == backend.last_load.p95_ms >= m.p50_ms
    assert m.energy_j > 0 and set(m.variant_share) <= {"b1", "b7"}
    assert 78.38 <= m.accuracy <= 84.58
    assert set(m.utilization) == {"gpu0/4g.20gb@0", "gpu0/3g.20gb@4"}
    assert all(0 < u < 1 for u in m.utilization.values())
    text = httpx.get(f"{backend.url}/metrics").text
    for needle in (
        'clover_requests_total{model="efficientnet",status="200"}',
        'clover_requests_total{model="efficientnet",status="400"}',
        'clover_request_latency_seconds_bucket{le="0.005",model="efficientnet"}',
        "clover_queue_length 0.0",
        'clover_slice_utilization{slice="gpu0/4g.20gb@0",variant="b1"}',
        'clover_configuration_info{configuration="4g:b1,3g:b7",device="cpu",gpu="a100-40gb",n_gpus="1",service="efficientnet"} 1.0',
        'clover_energy_joules_total{estimated="true",source="estimated"}',
        'clover_workers{state="ready"} 2.0',
    ):
        assert needle in text, needle


def test_albert_bytes_inputs() -> None:
    import tritonclient.http as th

    svc = tiny_albert()
    with LiveBackend(svc, GPU, device="cpu") as b:
        assert httpx.get(f"{b.url}/v2/health/ready").status_code == 503  # nothing applied yet
        md = httpx.get(f"{b.url}/v2/models/albert").json()
        assert [(t["name"], t["datatype"], t["shape"]) for t in md["inputs"]] == [
            ("question", "BYTES", [-1]), ("context", "BYTES", [-1])]
        assert b.apply(parse_configuration("7g:base", GPU, svc.variant_names)).ok
        c = th.InferenceServerClient(b.url.removeprefix("http://"))
        q = np.array([b"where is the grid cleanest?"], dtype=object)
        ctx = np.array([b"solar power peaks at noon in the south region"], dtype=object)
        inputs = []
        for name, arr in (("question", q), ("context", ctx)):
            i = th.InferInput(name, [1], "BYTES")
            i.set_data_from_numpy(arr)
            inputs.append(i)
        r = c.infer("albert", inputs)
        ans = r.as_numpy("answer")[0].decode()
        assert ans and set(ans.split()) <= set(ctx[0].decode().split())
        assert r.as_numpy("start_logits").shape[0] == 1
        m = b.run(1.0, 5.0)
        assert m.served == m.arrived and m.accuracy == pytest.approx(83.2)
        c.close()


def test_run_with_nothing_answered_reports_drops_not_zero_latency() -> None:
    svc = noop_service(delay_ms=1500)
    with LiveBackend(svc, GPU, request_timeout_s=0.4, loadgen="thread") as b:
        assert b.apply(parse_configuration("7g:b1", GPU, svc.variant_names)).ok
        m = b.run(0.5, 6.0)
        assert m.served == 0 and m.dropped == m.arrived > 0
        assert m.p95_ms == pytest.approx(400.0) and m.throughput_rps == 0.0
        assert b.last_load.status_counts.get(0, 0) == m.arrived  # client-side timeouts
