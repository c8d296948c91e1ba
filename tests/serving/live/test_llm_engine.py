"""The CPU LLM stand-in (no processes): sizing per variant, byte tokens, continuous batching that
matches generating each request alone, late requests joining a running batch, max_tokens."""
from __future__ import annotations

import pytest
import torch

from clover_rl.llm.catalog import load_llm_service
from clover_rl.serving.live.llm_engine import BatchEngine, GenParams, build_model, tiny_shape
from clover_rl.serving.live.llm_tokens import (
    BOS,
    EOS,
    VOCAB,
    StreamDecoder,
    chat_prompt,
    decode,
    encode,
)

SVC = load_llm_service("llm")
GREEDY = GenParams(max_tokens=10, temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def model():
    v = SVC.variant("llama-3.2-1b-int4")
    return build_model(tiny_shape(v.decode_weight_bytes, v.model.layers), seed=0, threads=1)


def _run(engine: BatchEngine, joins: dict[int, tuple[int, list[int], GenParams]] | None = None):
    """Step until idle; ``joins`` adds (rid, prompt, params) before iteration k. Returns tokens
    per request and the iteration at which each request got its tokens."""
    out: dict[int, list[int]] = {}
    when: dict[int, list[int]] = {}
    k = 0
    while engine.busy or (joins and any(i >= k for i in joins)):
        if joins and k in joins:
            engine.add(*joins[k])
        _, events = engine.step()
        for rid, tok, _ in events:
            out.setdefault(rid, []).append(tok)
            when.setdefault(rid, []).append(k)
        k += 1
    return out, when


def test_bigger_variants_get_bigger_stand_ins() -> None:
    sizes = {v.name: tiny_shape(v.decode_weight_bytes, v.model.layers).params for v in SVC.variants}
    assert sizes["llama-3.1-8b-bf16"] > sizes["llama-3.1-8b-int4"] > sizes["llama-3.2-1b-int4"]
    assert sizes["llama-3.2-3b-bf16"] > sizes["llama-3.2-1b-bf16"]
    assert 2e6 < sizes["llama-3.1-8b-bf16"] < 2e7


def test_byte_tokens_round_trip_and_stream_whole_characters() -> None:
    ids = encode("héllo")
    assert ids[0] == BOS and decode(ids) == "héllo" and len(ids) == 1 + len("héllo".encode())
    d = StreamDecoder()
    e_acute = list("é".encode())
    assert d.feed([e_acute[0]]) == "" and d.feed([e_acute[1], EOS]) == "é"
    assert chat_prompt([("user", "hi")]) == "user: hi\nassistant: "


def test_batched_generation_equals_generating_each_alone(model) -> None:
    prompts = [encode("hello world"), encode("a much longer prompt than the first one"), encode("x")]
    alone = []
    for i, p in enumerate(prompts):
        e = BatchEngine(model, 8)
        e.add(i, p, GREEDY)
        alone.append(_run(e)[0][i])
    e = BatchEngine(model, 8)
    e.add(0, prompts[0], GREEDY)
    e.add(1, prompts[1], GREEDY)
    out, when = _run(e, joins={3: (2, prompts[2], GREEDY)})
    assert [out[i] for i in range(3)] == alone
    # the late request joined the running batch: its tokens came while the others still decoded
    assert when[2][0] == 3 and when[2][-1] < when[0][-1] + 5 and when[2][1] < when[0][-1]
    assert all(len(t) == GREEDY.max_tokens for t in out.values())


def test_seats_and_kv_budget_limit_the_batch(model) -> None:
    p = GenParams(max_tokens=5, temperature=0.0, ignore_eos=True)
    e = BatchEngine(model, max_batch=2)
    for i in range(3):
        e.add(i, encode("abc"), p)
    kind, events = e.step()
    assert kind == "prefill" and sorted(r for r, _, _ in events) == [0, 1] and len(e.waiting) == 1
    kv = BatchEngine(model, max_batch=8, kv_capacity_tokens=2 * (4 + 5))
    for i in range(3):
        kv.add(i, encode("abc"), p)
    assert len(kv.step()[1]) == 2  # the third request's footprint does not fit beside two
    with pytest.raises(ValueError, match="exceeds"):
        kv.add(9, encode("x" * 40), p)


def test_sampling_is_seeded_and_eos_ends_a_sequence(model) -> None:
    p = GenParams(max_tokens=12, temperature=1.0, seed=7, ignore_eos=True)
    runs = []
    for _ in range(2):
        e = BatchEngine(model, 4)
        e.add(1, encode("seed"), p)
        runs.append(_run(e)[0][1])
    assert runs[0] == runs[1]
    e = BatchEngine(model, 4)
    e.add(1, encode("seed"), GenParams(max_tokens=3, temperature=0.0))
    e.step()
    only_eos = torch.full((VOCAB,), -1e9)
    only_eos[EOS] = 0.0  # logits that make EOS the greedy choice
    assert e._emit(e.running[0], only_eos)[1:] == (EOS, "stop")
    e2 = BatchEngine(model, 4)
    e2.add(1, encode("seed"), GenParams(max_tokens=3, temperature=0.0, ignore_eos=True))
    e2.step()
    assert e2._emit(e2.running[0], only_eos)[1:] == (EOS, None)
