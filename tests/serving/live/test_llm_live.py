"""The LLM serving plane end to end: real worker processes generating tokens, the `openai` client
against the local server (streaming and not, chat and completions, usage counts), KServe v2
generate over plain HTTP, continuous batching seen from clients, overload refusals, bad input,
and `clover-rl serve --service llm`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from openai import APIStatusError, OpenAI

from clover_rl.llm.catalog import load_llm_service
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.serving.live.llm_plane import LLMPlane
from clover_rl.serving.live.llm_tokens import chat_prompt, encode

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[3]
SVC = load_llm_service("llm")
GPU = get_gpu("a100-40gb")
NO_EOS = {"ignore_eos": True}


@pytest.fixture(scope="module")
def plane():
    p = LLMPlane(SVC, GPU, max_batch=4, max_queue=2, cpu_scale=0.5, request_timeout_s=60.0)
    try:
        assert p.apply(parse_configuration("7g:llama-3.2-1b-int4", GPU, SVC.variant_names)).ok
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
def client(plane) -> OpenAI:
    return OpenAI(base_url=plane.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_completions_with_the_openai_client(client: OpenAI) -> None:
    r = client.completions.create(model="llm", prompt="Hello", max_tokens=7, temperature=0, extra_body=NO_EOS)
    assert r.object == "text_completion" and r.model == "llm"
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (len(encode("Hello")), 7, 13)
    assert r.system_fingerprint.startswith("llama-3.2-1b-int4@gpu0/7g")
    # streamed: the same greedy text in pieces, usage in the last chunk before [DONE]
    chunks = list(client.completions.create(model="llm", prompt="Hello", max_tokens=7, temperature=0, stream=True,
                                            stream_options={"include_usage": True}, extra_body=NO_EOS))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    # token ids in, the tokenizer-free path
    ids = client.completions.create(model="llm", prompt=encode("Hello"), max_tokens=7, temperature=0, extra_body=NO_EOS)
    assert ids.choices[0].text == r.choices[0].text


def test_chat_completions_streaming_and_not(client: OpenAI) -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model="llm", messages=msgs, max_tokens=5, temperature=0, extra_body=NO_EOS)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens == len(encode(chat_prompt([("system", "be brief"), ("user", "hi")])))
    assert r.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(model="llm", messages=msgs, max_tokens=5, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}, extra_body=NO_EOS))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
    assert chunks[-1].usage.total_tokens == r.usage.total_tokens
    no_usage = list(client.chat.completions.create(model="llm", messages=msgs, max_tokens=2, stream=True))
    assert all(c.usage is None for c in no_usage)
    assert client.models.list().data[0].id == "llm"


def test_max_tokens_caps_every_generation(client: OpenAI) -> None:
    for n in (1, 3):
        r = client.completions.create(model="llm", prompt="count", max_tokens=n)  # sampling, EOS allowed
        assert r.usage.completion_tokens <= n and r.choices[0].finish_reason in ("length", "stop")


def test_v2_generate_with_plain_http(plane, client: OpenAI) -> None:
    ref = client.completions.create(model="llm", prompt="abc", max_tokens=6, temperature=0, extra_body=NO_EOS)
    body = {"text_input": "abc", "parameters": {"max_tokens": 6, "temperature": 0, "ignore_eos": True}}
    r = httpx.post(f"{plane.url}/v2/models/llm/generate", json=body, timeout=60)
    assert r.status_code == 200
    out = r.json()
    assert out["model_name"] == "llm" and out["text_output"] == ref.choices[0].text and out["completion_tokens"] == 6
    with httpx.stream("POST", f"{plane.url}/v2/models/llm/generate_stream", json=body, timeout=60) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    assert "".join(e["text_output"] for e in events) == ref.choices[0].text
    assert events[-1]["finish_reason"] == "length"
    assert httpx.post(f"{plane.url}/v2/models/nope/generate", json=body).json()["error"].startswith("unknown model")


def _stream_times(client: OpenAI, prompt: str, n: int, times: list[float]) -> None:
    for c in client.completions.create(model="llm", prompt=prompt, max_tokens=n, temperature=0, stream=True,
                                       extra_body=NO_EOS):
        if c.choices and c.choices[0].text:
            times.append(time.perf_counter())


def test_continuous_batching_interleaves_and_a_late_request_joins(client: OpenAI) -> None:
    long_t: list[float] = []
    short_t: list[float] = []
    a = threading.Thread(target=_stream_times, args=(client, "long", 200, long_t))
    a.start()
    deadline = time.monotonic() + 60
    while len(long_t) < 5 and time.monotonic() < deadline:  # the long request is decoding
        time.sleep(0.005)
    _stream_times(client, "short", 5, short_t)
    a.join(60)
    assert len(long_t) > 5 and short_t
    # the late request got its tokens while the long one was still generating (it joined the batch)
    assert long_t[0] < short_t[0] and short_t[-1] < long_t[-1]
    assert any(short_t[0] < t < short_t[-1] for t in long_t) or short_t[-1] - short_t[0] < 0.05


def test_overload_is_refused_explicitly_with_retry_after(plane) -> None:
    body = {"model": "llm", "prompt": "busy", "max_tokens": 150, "ignore_eos": True}
    statuses: list[tuple[int, dict, str | None]] = []

    def go() -> None:
        r = httpx.post(f"{plane.url}/v1/completions", json=body, timeout=60)
        statuses.append((r.status_code, r.json(), r.headers.get("retry-after")))

    threads = [threading.Thread(target=go) for _ in range(10)]  # 4 seats + 2 queued, the rest refused
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = [s for s, _, _ in statuses]
    assert codes.count(200) >= 4 and codes.count(503) >= 1 and set(codes) <= {200, 503}
    refused = [(b, ra) for s, b, ra in statuses if s == 503]
    assert all(b["error"]["code"] == "overloaded" and int(ra) >= 1 for b, ra in refused)
    assert plane.pool.admission()["rejected"] >= len(refused)


def test_bad_input_gets_openai_errors(plane, client: OpenAI) -> None:
    url = f"{plane.url}/v1/completions"
    for content, status in ((b"{oops", 400), (json.dumps({"model": "llm", "prompt": "x", "max_tokens": -3}), 400),
                            (json.dumps({"model": "nope", "prompt": "x"}), 404)):
        r = httpx.post(url, content=content, headers={"content-type": "application/json"})
        assert r.status_code == status and set(r.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(APIStatusError) as ei:  # too long for the stand-in's context: refused by the worker
        client.completions.create(model="llm", prompt="x" * 5000, max_tokens=4)
    assert ei.value.status_code == 400 and "context" in ei.value.message
    assert httpx.get(f"{plane.url}/v1/nothing").json()["error"]["type"] == "invalid_request_error"


def test_metrics_report_ttft_tpot_and_tokens(plane, client: OpenAI) -> None:
    client.completions.create(model="llm", prompt="m", max_tokens=4, temperature=0, extra_body=NO_EOS)
    text = httpx.get(f"{plane.url}/metrics").text
    for name in ("clover_llm_ttft_seconds_count", "clover_llm_tpot_seconds_count", "clover_llm_output_tokens_total",
                 "clover_llm_prompt_tokens_total", "clover_queue_length", 'clover_requests_total{model="llm",status="200"}'):
        assert name in text
    out = [ln for ln in text.splitlines() if ln.startswith("clover_llm_output_tokens_total")]
    assert float(out[0].split()[-1]) >= 4
    recs = list(plane.frontend.app.state.llm_records)
    ok = [r for r in recs if r.status == 200 and r.output_tokens > 1]
    assert ok and all(r.ttft_s > 0 and r.tpot_s > 0 for r in ok)


def test_cli_serve_llm_answers_the_openai_client() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "clover_rl.cli", "serve", "--service", "llm", "--device", "cpu",
                             "--config", "7g:llama-3.2-1b-int4", "--port", "0", "--cpu-scale", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        url = None
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("serving "):
                url = line.split(" at ")[1].split()[0]
                break
        assert url, "serve did not start"
        c = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        r = c.completions.create(model="llm", prompt="hi", max_tokens=3, extra_body=NO_EOS)
        assert r.usage.completion_tokens == 3
        s = list(c.chat.completions.create(model="llm", messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                           stream=True, extra_body=NO_EOS))
        assert s[-1].choices[0].finish_reason == "length"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in out


def test_a_client_that_leaves_cancels_its_generation(plane) -> None:
    before = plane.pool.snapshot().slots[0].served
    with httpx.stream("POST", f"{plane.url}/v1/completions", timeout=60,
                      json={"model": "llm", "prompt": "leave", "max_tokens": 2000, "stream": True, "ignore_eos": True}) as s:
        for line in s.iter_lines():
            if line.startswith("data: "):
                break  # first token seen: hang up
    deadline = time.monotonic() + 10
    while plane.pool._d.in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plane.pool._d.in_flight() == 0  # the seat was freed long before 2000 tokens
    assert plane.pool.snapshot().slots[0].served == before
    assert any(r.status == 499 for r in plane.frontend.app.state.llm_records)


def test_live_backend_measures_an_interval_in_tokens(plane) -> None:
    from clover_rl.serving.live.llm_backend import LLMLiveBackend

    b = LLMLiveBackend(SVC, GPU, plane=plane, length_scale=0.02, max_output=8, ttft_sla_ms=2000, tpot_sla_ms=100)
    m = b.run(4.0, 2.0)
    res = b.last_load
    assert res is not None and res.sent >= 1 and res.answered == res.statuses[200]
    assert m.served == res.output_tokens and m.arrived == res.requested_tokens  # ignore_eos: all asked
    assert m.dropped == m.arrived - m.served and m.throughput_rps == pytest.approx(m.served / m.duration_s)
    assert m.variant_share == {"llama-3.2-1b-int4": 1.0}
    assert m.accuracy == pytest.approx(SVC.variant("llama-3.2-1b-int4").quality)
    assert m.energy_j > 0 and m.estimated and m.p95_ms >= m.p50_ms > 0
    assert set(m.utilization) == {"gpu0/7g.40gb@0"}


def test_a_crashed_worker_requeues_waiting_requests_and_fails_streaming_ones(plane) -> None:
    d = plane.pool._d
    # the restart takes tens of seconds on a loaded host: let the queued request wait for it
    d.no_worker_timeout_s, d.max_queue_wait_s = 600.0, None
    results: dict[str, int] = {}

    def go(name: str, n: int) -> None:
        r = httpx.post(f"{plane.url}/v1/completions", timeout=120,
                       json={"model": "llm", "prompt": name, "max_tokens": n, "ignore_eos": True})
        results[name] = r.status_code

    long = [threading.Thread(target=go, args=(f"long{i}", 3000)) for i in range(4)]  # every seat
    for t in long:
        t.start()
    deadline = time.monotonic() + 30
    while d.in_flight() < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    waiting = threading.Thread(target=go, args=("waiting", 3))
    waiting.start()
    while len(d.queue) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the long requests are generating
    restarts = plane.pool.snapshot().slots[0].restarts
    os.kill(plane.pool.worker_pids()[0], signal.SIGKILL)
    for t in [*long, waiting]:
        t.join(120)
    # the streaming ones failed (their tokens cannot be taken back); the queued one was served after the restart
    assert results == {**{f"long{i}": 500 for i in range(4)}, "waiting": 200}
    assert plane.pool.snapshot().slots[0].restarts == restarts + 1
