"""OpenAI-compatible request parsing and response shapes (``/v1/completions``,
``/v1/chat/completions``) and the KServe v2 generate extension's, without any HTTP code.

Accepted request fields (OpenAI API reference, "Completions" / "Chat Completions"): ``model``
(this server's service name), ``prompt`` (text, or token ids: the tokenizer-free path, see
``llm_tokens``) / ``messages`` (``role`` + text ``content``, or a list of ``{"type": "text"}``
parts), ``max_tokens`` (chat: also ``max_completion_tokens``; default 16 as in OpenAI's
completions), ``temperature`` (0 = greedy; default 1), ``top_p``, ``seed``, ``n`` (1 only),
``stream``, ``stream_options.include_usage``, ``user``, and vLLM's ``ignore_eos``. Every other
field is refused with 400 naming it, never silently ignored.

Errors are OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400
``invalid_request_error`` for a malformed body or bad value, 404 ``model_not_found`` for a model
this server does not serve (OpenAI's own status for an unknown model), 429/503 from admission
control (with ``Retry-After``), 500 when generation failed.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from clover_rl.serving.live.llm_engine import GenParams
from clover_rl.serving.live.llm_tokens import VOCAB, chat_prompt
from clover_rl.serving.live.llm_worker import GenRequest

COMMON = ("model", "max_tokens", "temperature", "top_p", "seed", "n", "stream", "stream_options", "user",
          "ignore_eos")
FIELDS = {"completion": (*COMMON, "prompt"), "chat": (*COMMON, "messages", "max_completion_tokens")}
MAX_TOKENS_DEFAULT = 16


class OpenAIError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


def _bad(message: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param)


@dataclass(frozen=True)
class OpenAIRequest:
    kind: str  # "completion" | "chat"
    model: str
    gen: GenRequest
    stream: bool
    include_usage: bool


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(f"the request body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object")
    return data


def _number(data: dict, key: str, default: float, lo: float, hi: float) -> float:
    v = data.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi) or not math.isfinite(v):
        raise _bad(f"'{key}' must be a number in [{lo:g}, {hi:g}], got {v!r}", key)
    return float(v)


def _int(data: dict, key: str, default: int | None, lo: int) -> int | None:
    v = data.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(f"'{key}' must be an integer >= {lo}, got {v!r}", key)
    return v


def _token_ids(v: list, param: str) -> tuple[int, ...]:
    if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < VOCAB for t in v):
        raise _bad(f"'{param}' token ids must be integers in 0..{VOCAB - 1} (byte tokens)", param)
    return tuple(v)


def _prompt(data: dict) -> tuple[str | None, tuple[int, ...] | None]:
    p = data.get("prompt")
    if isinstance(p, str):
        return p, None
    if isinstance(p, list) and p and all(isinstance(t, int) for t in p):
        return None, _token_ids(p, "prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
        return _prompt({"prompt": p[0]})
    if isinstance(p, list) and len(p) > 1:
        raise _bad("one prompt per request (batches of prompts are not supported)", "prompt")
    raise _bad("'prompt' must be a string or a list of token ids", "prompt")


def _messages(data: dict) -> str:
    msgs = data.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("'messages' must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad(f"messages[{i}] must be an object with a 'role'", "messages")
        c = m.get("content")
        if isinstance(c, list) and all(isinstance(x, dict) and x.get("type") == "text" for x in c):
            c = "".join(str(x.get("text", "")) for x in c)
        if not isinstance(c, str):
            raise _bad(f"messages[{i}].content must be text", "messages")
        out.append((m["role"], c))
    return chat_prompt(out)


def parse_openai(kind: str, body: bytes, served_model: str) -> OpenAIRequest:
    """The request of ``/v1/completions`` (``kind="completion"``) or ``/v1/chat/completions``
    (``"chat"``); OpenAIError for anything malformed, unsupported or out of range."""
    data = parse_json(body)
    extra = [k for k in data if k not in FIELDS[kind]]
    if extra:
        raise _bad(f"unsupported parameter{'s' if len(extra) > 1 else ''} {', '.join(repr(k) for k in extra)} "
                   f"(supported: {', '.join(FIELDS[kind])})", extra[0])
    model = data.get("model")
    if not isinstance(model, str):
        raise _bad("'model' is required (a string)", "model")
    if model != served_model:
        raise OpenAIError(404, f"The model '{model}' does not exist (this server serves '{served_model}')",
                          param="model", code="model_not_found")
    if kind == "completion":
        text, ids = _prompt(data)
        mt = _int(data, "max_tokens", MAX_TOKENS_DEFAULT, 1)
    else:
        text, ids = _messages(data), None
        mt = _int(data, "max_completion_tokens", None, 1)
        mt = _int(data, "max_tokens", mt if mt is not None else MAX_TOKENS_DEFAULT, 1)
    if _int(data, "n", 1, 1) != 1:
        raise _bad("only n = 1 is supported", "n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be true or false", "stream")
    opts = data.get("stream_options") or {}
    if not isinstance(opts, dict) or set(opts) - {"include_usage"}:
        raise _bad("'stream_options' supports only include_usage", "stream_options")
    ignore_eos = data.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise _bad("'ignore_eos' must be true or false", "ignore_eos")
    params = GenParams(max_tokens=int(mt or MAX_TOKENS_DEFAULT), temperature=_number(data, "temperature", 1.0, 0, 2),
                       top_p=_number(data, "top_p", 1.0, 1e-9, 1), seed=_int(data, "seed", None, 0),
                       ignore_eos=ignore_eos)
    return OpenAIRequest(kind, model, GenRequest(text, ids, params), stream, bool(opts.get("include_usage")))


def parse_generate(body: bytes) -> tuple[GenRequest, bool]:
    """KServe v2 generate extension body: ``text_input`` (or ``input_ids``) and ``parameters``
    (max_tokens, temperature, top_p, seed, ignore_eos, stream); (request, stream). ValueError."""
    data = parse_json(body)
    extra = set(data) - {"text_input", "input_ids", "parameters", "id"}
    if extra:
        raise _bad(f"unsupported field {sorted(extra)[0]!r} (supported: text_input, input_ids, parameters, id)")
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("'parameters' must be an object")
    bad = set(params) - {"max_tokens", "temperature", "top_p", "seed", "ignore_eos", "stream"}
    if bad:
        raise _bad(f"unsupported parameter {sorted(bad)[0]!r}")
    if isinstance(data.get("text_input"), str):
        text, ids = data["text_input"], None
    elif isinstance(data.get("input_ids"), list) and data["input_ids"]:
        text, ids = None, _token_ids(data["input_ids"], "input_ids")
    else:
        raise _bad("give 'text_input' (a string) or 'input_ids' (token ids)")
    gp = GenParams(max_tokens=int(_int(params, "max_tokens", MAX_TOKENS_DEFAULT, 1) or MAX_TOKENS_DEFAULT),
                   temperature=_number(params, "temperature", 1.0, 0, 2),
                   top_p=_number(params, "top_p", 1.0, 1e-9, 1), seed=_int(params, "seed", None, 0),
                   ignore_eos=bool(params.get("ignore_eos", False)))
    return GenRequest(text, ids, gp), bool(params.get("stream", False))


# ---------------------------------------------------------------------- response shapes
def new_id(kind: str) -> str:
    return ("cmpl-" if kind == "completion" else "chatcmpl-") + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def response(req: OpenAIRequest, rid: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int,
             fingerprint: str) -> dict[str, Any]:
    """A non-streaming completion / chat completion."""
    if req.kind == "completion":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    else:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": finish}
        obj = "chat.completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": req.model, "system_fingerprint": fingerprint,
            "choices": [choice], "usage": usage(prompt_tokens, completion_tokens)}


def chunk(req: OpenAIRequest, rid: str, created: int, text: str | None, finish: str | None,
          fingerprint: str | None = None, usage_counts: dict[str, int] | None = None,
          first: bool = False) -> dict[str, Any]:
    """One streamed chunk; ``text=None`` with ``usage_counts`` is the final usage-only chunk."""
    choices: list[dict[str, Any]] = []
    if text is not None or finish is not None:
        if req.kind == "completion":
            choices = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]
        else:
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if text:
                delta["content"] = text
            elif first:
                delta["content"] = ""
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    out: dict[str, Any] = {"id": rid, "object": "text_completion" if req.kind == "completion" else "chat.completion.chunk",
                           "created": created, "model": req.model, "choices": choices}
    if fingerprint is not None:
        out["system_fingerprint"] = fingerprint
    if usage_counts is not None:
        out["usage"] = usage_counts
    elif req.include_usage:
        out["usage"] = None
    return out


def sse(obj: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n`` (``data: [DONE]`` for the string)."""
    return b"data: " + (obj.encode() if isinstance(obj, str) else json.dumps(obj, separators=(",", ":")).encode()) + b"\n\n"
