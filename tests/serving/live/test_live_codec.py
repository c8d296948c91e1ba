"""KServe v2 tensor coding: JSON, Triton binary extension, BYTES, and one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.serving.live.codec import (
    CodecError,
    InferRequest,
    decode_request,
    deserialize_bytes,
    encode_request,
    encode_response,
    serialize_bytes,
)


@pytest.mark.parametrize("binary", [True, False])
def test_request_round_trip(binary: bool) -> None:
    img = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    q = np.array([b"why?", "naïve".encode()], dtype=object)
    body, hl = encode_request({"INPUT__0": img, "question": q}, request_id="r1", binary=binary)
    assert (hl is not None) == binary
    req = decode_request(body, hl)
    assert req.id == "r1"
    np.testing.assert_array_equal(req.inputs["INPUT__0"], img)
    assert list(req.inputs["question"]) == list(q)


def test_response_binary_and_json_outputs() -> None:
    out = {"OUTPUT__0": np.ones((2, 3), np.float32), "answer": np.array([b"a", b"bc"], dtype=object)}
    req = InferRequest(id="x", inputs={}, outputs={"OUTPUT__0": True, "answer": False})
    body, hl = encode_response("m", out, req, {"variant": "b1"})
    import json

    head = json.loads(body[:hl])
    assert head["id"] == "x" and head["parameters"]["variant"] == "b1"
    o0, o1 = head["outputs"]
    assert o0["parameters"]["binary_data_size"] == 24 and o1["data"] == ["a", "bc"]
    assert np.frombuffer(body[hl:], np.float32).tolist() == [1.0] * 6


def test_bytes_serialisation() -> None:
    a = np.array([b"", b"xyz", b"\x00\x01"], dtype=object)
    assert list(deserialize_bytes(serialize_bytes(a))) == list(a)


_BIN = b'{"inputs": [{"name": "a", "datatype": "UINT8", "shape": [4], "parameters": {"binary_data_size": 4}}]}xx'


@pytest.mark.parametrize("body, hl, msg", [
    (b"not json", None, "not valid JSON"),
    (b'{"inputs": []}', None, "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "a", "datatype": "FP99", "shape": [1], "data": [1]}]}', None, "unknown datatype"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [2], "data": [1]}]}', None, "do not fill shape"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None, "non-negative"),
    (_BIN, len(_BIN) - 2, "runs past the body"),
    (b"{}", 99, "outside the body"),
])
def test_malformed_requests(body: bytes, hl: int | None, msg: str) -> None:
    with pytest.raises(CodecError, match=msg) as e:
        decode_request(body, hl)
    assert "\n" not in str(e.value)


def test_a_repeated_binary_header_is_decoded_from_its_plan() -> None:
    from clover_rl.serving.live.codec import RequestDecoder

    checked: list[dict] = []
    codec = RequestDecoder(checked.append)
    decode_request = codec.decode
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8) for _ in range(2))
    scale = np.array([0.5, 2.0], np.float32)
    body_a, hl = encode_request({"INPUT__0": a, "scale": scale})
    body_b, hl_b = encode_request({"INPUT__0": b, "scale": scale * 3})
    assert hl == hl_b and body_a[:hl] == body_b[:hl]  # same shapes: the same JSON header
    codec.plans.clear()
    first = decode_request(body_a, hl)
    assert len(codec.plans) == 1 and len(checked) == 1
    second = decode_request(body_b, hl)  # from the plan: this body's tensors, not the first one's
    np.testing.assert_array_equal(second.inputs["INPUT__0"], b)
    np.testing.assert_array_equal(second.inputs["scale"], scale * 3)
    assert second.binary_default and second.outputs is None and first.inputs["INPUT__0"].shape == (2, 5, 5, 3)
    assert len(checked) == 1  # the plan's layout passed the check once

    def refuse(inputs: dict) -> None:
        raise CodecError("no")

    strict = RequestDecoder(refuse)
    for _ in range(2):  # refused every time, never planned
        with pytest.raises(CodecError, match="no"):
            strict.decode(body_a, hl)
    assert not strict.plans
    with pytest.raises(CodecError, match="runs past the body"):  # a short body is still refused
        decode_request(body_b[:-3], hl)
    with_id, hl_id = encode_request({"INPUT__0": a}, request_id="r7")
    assert decode_request(with_id, hl_id).id == "r7" and len(codec.plans) == 1  # never cached
    text = np.array([b"hi"], dtype=object)
    body_t, hl_t = encode_request({"question": text})
    assert list(decode_request(body_t, hl_t).inputs["question"]) == [b"hi"] and len(codec.plans) == 1


def test_response_templates_give_the_same_bytes_as_encode_response() -> None:
    from clover_rl.serving.live.codec import ResponseEncoder

    enc = ResponseEncoder("m")
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    words = np.array([b"a", b"bc"], dtype=object)
    cases = [
        InferRequest(None, {}, None, True),  # every output binary: templated
        InferRequest(None, {}, {"y": True}, False),  # one requested output, binary: templated
        InferRequest(None, {}, {"y": False}, False),  # JSON data: encode_response
        InferRequest("r9", {}, None, True),  # a request id: encode_response
    ]
    for outputs in ({"y": logits}, {"y": logits, "w": words}, {"y": logits * 2}):
        for req in cases:
            for ms in (1.25, 0.001, 12345.678):
                want = encode_response("m", outputs, req, {"variant": "b1", "slice": "gpu0/3g@4", "service_ms": ms})
                assert enc.encode(outputs, req, "b1", "gpu0/3g@4", ms) == want
    assert any(t is not None for t in enc.templates.values()) and any(t is None for t in enc.templates.values())
    with pytest.raises(CodecError, match="unknown output"):
        enc.encode({"y": logits}, InferRequest(None, {}, {"nope": True}, False), "b1", "s", 1.0)
