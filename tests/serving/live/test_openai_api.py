"""OpenAI / v2 generate request parsing and response shapes (no server)."""
from __future__ import annotations

import json

import pytest

from clover_rl.serving.live.llm_tokens import chat_prompt
from clover_rl.serving.live.openai_api import (
    OpenAIError,
    chunk,
    parse_generate,
    parse_openai,
    response,
    sse,
)


def _p(kind: str, **body):
    return parse_openai(kind, json.dumps(body).encode(), "llm")


def test_completion_and_chat_requests() -> None:
    r = _p("completion", model="llm", prompt="hi", max_tokens=5, temperature=0, stream=True,
           stream_options={"include_usage": True}, ignore_eos=True, seed=3)
    assert (r.gen.text, r.gen.params.max_tokens, r.gen.params.temperature, r.stream, r.include_usage) == \
        ("hi", 5, 0.0, True, True)
    assert r.gen.params.ignore_eos and r.gen.params.seed == 3
    assert _p("completion", model="llm", prompt=[256, 104, 105]).gen.ids == (256, 104, 105)
    assert _p("completion", model="llm", prompt="x").gen.params.max_tokens == 16  # OpenAI's default
    c = _p("chat", model="llm", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
           max_completion_tokens=7)
    assert c.gen.text == chat_prompt([("user", "hi")]) and c.gen.params.max_tokens == 7


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (json.dumps({"model": "gpt-4", "prompt": "x"}).encode(), 404, "model"),
    (json.dumps({"model": "llm", "prompt": "x", "max_tokens": -1}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "llm", "prompt": "x", "max_tokens": 1.5}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "llm", "prompt": "x", "temperature": 3}).encode(), 400, "temperature"),
    (json.dumps({"model": "llm", "prompt": "x", "n": 2}).encode(), 400, "n"),
    (json.dumps({"model": "llm", "prompt": "x", "logprobs": 2}).encode(), 400, "logprobs"),
    (json.dumps({"model": "llm", "prompt": [1, 999]}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "x"}).encode(), 400, "model"),
])
def test_bad_requests_are_openai_errors(body: bytes, status: int, param: str | None) -> None:
    with pytest.raises(OpenAIError) as ei:
        parse_openai("completion", body, "llm")
    e = ei.value
    assert e.status == status and e.param == param
    err = e.body()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] == "invalid_request_error"


def test_chat_needs_messages() -> None:
    with pytest.raises(OpenAIError, match="messages"):
        _p("chat", model="llm", messages=[])


def test_generate_requests() -> None:
    req, stream = parse_generate(json.dumps({"text_input": "hi", "parameters": {"max_tokens": 3, "stream": True}}).encode())
    assert req.text == "hi" and req.params.max_tokens == 3 and stream
    with pytest.raises(OpenAIError, match="unsupported parameter"):
        parse_generate(json.dumps({"text_input": "hi", "parameters": {"beam_width": 2}}).encode())
    with pytest.raises(OpenAIError, match="text_input"):
        parse_generate(b"{}")


def test_response_and_chunk_shapes() -> None:
    r = _p("chat", model="llm", messages=[{"role": "user", "content": "hi"}], stream=True,
           stream_options={"include_usage": True})
    full = response(r, "chatcmpl-1", "ab", "length", 4, 2, "v@s")
    assert full["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert full["choices"][0]["message"] == {"role": "assistant", "content": "ab"}
    first = chunk(r, "chatcmpl-1", 0, "", None, first=True)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""} and first["usage"] is None
    last = chunk(r, "chatcmpl-1", 0, None, None, "v@s", {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 2
    assert sse("[DONE]") == b"data: [DONE]\n\n" and sse({"a": 1}) == b'data: {"a":1}\n\n'
