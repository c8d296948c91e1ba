"""A small decoder that really generates tokens on the CPU, with iteration-level batching.

Model (no hub download): ``transformers.LlamaForCausalLM`` built from a ``LlamaConfig`` with
random weights (seeded), vocabulary = the byte tokens of :mod:`.llm_tokens`. Its size follows
the variant it stands for, so bigger (or less quantised) variants are slower, as on a GPU, where
decode is memory bound: the stand-in gets one parameter per :data:`BYTES_PER_TINY_PARAM` bytes
the real variant reads per decode iteration (``LLMVariant.decode_weight_bytes``; x ``scale``),
with a quarter of the real model's layers (at least 2) and the width that gives that count
(multiples of 32, head dim 32, half as many KV heads as query heads when even). Llama-3.1-8B
bf16 -> ~4M parameters, Llama-3.2-1B int4 -> ~0.3M.

Scheduling (:class:`BatchEngine`, the rules of ``clover_rl/llm/simulator.py``): requests wait
FCFS; before each iteration every waiting request is admitted, in order, while the batch has a
free seat (``max_batch``) and its whole KV footprint (prompt + max_tokens) fits in
``kv_capacity_tokens`` beside the running ones (reserved up front: nobody is evicted). If any
was admitted the iteration prefills them (each emits its first token); otherwise it is one
decode step of the whole running batch (each emits one token). New requests thus join a running
batch between iterations. A sequence ends at ``EOS`` (unless ``ignore_eos``), at
``max_tokens``, or when cancelled.

The decode step batches sequences of different lengths with left padding: each sequence keeps
its own KV cache (preallocated for prompt + max_tokens); the step copies them right-aligned
into one padded cache, masks the padding (``attention_mask``), gives each row its own
``position_ids``, and keeps the new key/value column of each row. Output equals generating each
sequence alone (up to float rounding; tested).
"""
from __future__ import annotations

import inspect
import math
from collections import deque
from dataclasses import dataclass

import torch

from clover_rl.errors import ConfigError
from clover_rl.serving.live.llm_tokens import EOS, VOCAB

BYTES_PER_TINY_PARAM = 4000.0
HEAD_DIM = 32
CONTEXT = 4096  # the stand-in's max_position_embeddings (prompt + output tokens)


@dataclass(frozen=True)
class TinyShape:
    """Architecture of the CPU stand-in of one variant."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int

    @property
    def params(self) -> int:
        h, kv = self.hidden, self.kv_heads * HEAD_DIM
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * self.intermediate + 2 * h
        return self.layers * per_layer + VOCAB * h + h


def tiny_shape(decode_weight_bytes: float, real_layers: int, scale: float = 1.0) -> TinyShape:
    """The stand-in's shape for a variant reading ``decode_weight_bytes`` per decode iteration."""
    if not (decode_weight_bytes > 0 and scale > 0):
        raise ConfigError(f"tiny model needs positive bytes and scale, got {decode_weight_bytes}, {scale}")
    target = decode_weight_bytes / BYTES_PER_TINY_PARAM * scale
    layers = max(2, real_layers // 4)
    # per layer ~ 2h^2 (q, o) + h^2 (k, v at kv = h/2) + 3 h x 2.75h (MLP) = 11.25 h^2
    h = math.sqrt(target / (layers * 11.25))
    heads = max(2, int(round(h / HEAD_DIM)))
    hidden = heads * HEAD_DIM
    return TinyShape(layers, hidden, heads, heads // 2 if heads % 2 == 0 else heads, int(hidden * 2.75) // 32 * 32)


def build_model(shape: TinyShape, seed: int = 0, threads: int | None = None) -> torch.nn.Module:
    """``LlamaForCausalLM`` with random weights of ``shape`` (eval mode, fp32, CPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if threads:
        torch.set_num_threads(threads)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                      num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                      num_key_value_heads=shape.kv_heads, head_dim=HEAD_DIM, max_position_embeddings=CONTEXT,
                      bos_token_id=256, eos_token_id=EOS, pad_token_id=0, tie_word_embeddings=True,
                      initializer_range=0.1)  # wider than 0.02: peaked logits, so greedy output is stable
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.eval()
    return model


@dataclass(frozen=True)
class GenParams:
    """How one request generates: ``temperature`` 0 = greedy; ``seed`` makes sampling repeatable."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False


class _Seq:
    __slots__ = ("gen", "k", "n", "out", "params", "prompt", "rid", "v")

    def __init__(self, rid: int, prompt: list[int], params: GenParams):
        self.rid = rid
        self.prompt = prompt
        self.params = params
        self.out: list[int] = []
        self.n = 0  # tokens in the KV cache
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.gen: torch.Generator | None = None
        if params.temperature > 0:
            self.gen = torch.Generator().manual_seed(params.seed if params.seed is not None else rid)

    @property
    def footprint(self) -> int:
        return len(self.prompt) + self.params.max_tokens


Event = tuple[int, int, str | None]  # (request id, token id, finish reason or None)


class BatchEngine:
    """Iteration-level continuous batching over one model (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, max_batch: int = 8, kv_capacity_tokens: int | None = None):
        cfg = model.config
        self.model = model
        self.max_batch = max_batch
        self.context = int(cfg.max_position_embeddings)
        self.kv_capacity = kv_capacity_tokens or max_batch * self.context
        self.layers = int(cfg.num_hidden_layers)
        self.kv_heads = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.waiting: deque[_Seq] = deque()
        self.running: list[_Seq] = []
        self.iterations = 0

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def reserved(self) -> int:
        return sum(s.footprint for s in self.running)

    def check(self, prompt: list[int], params: GenParams) -> None:
        """ValueError (answered 400) for a request this engine can never serve."""
        if not prompt:
            raise ValueError("the prompt is empty")
        if any(not 0 <= t < VOCAB for t in prompt):
            raise ValueError(f"prompt token ids must be in 0..{VOCAB - 1}")
        need = len(prompt) + params.max_tokens
        if need > self.context or need > self.kv_capacity:
            raise ValueError(f"prompt ({len(prompt)} tokens) + max_tokens ({params.max_tokens}) = {need} exceeds "
                             f"this worker's context of {min(self.context, self.kv_capacity)} tokens")

    def add(self, rid: int, prompt: list[int], params: GenParams) -> None:
        self.check(prompt, params)
        self.waiting.append(_Seq(rid, list(prompt), params))

    def cancel(self, rid: int) -> bool:
        for group in (self.waiting, self.running):
            for s in group:
                if s.rid == rid:
                    group.remove(s)
                    return True
        return False

    @torch.inference_mode()
    def step(self) -> tuple[str, list[Event]]:
        """One iteration: ("prefill" | "decode" | "idle", events)."""
        admitted: list[_Seq] = []
        reserved = self.reserved
        while self.waiting and len(self.running) + len(admitted) < self.max_batch:
            s = self.waiting[0]
            if reserved + s.footprint > self.kv_capacity:
                break
            self.waiting.popleft()
            admitted.append(s)
            reserved += s.footprint
        if admitted:
            events = [self._prefill(s) for s in admitted]
            self.running.extend(admitted)
            kind = "prefill"
        elif self.running:
            events = self._decode()
            kind = "decode"
        else:
            return "idle", []
        self.iterations += 1
        done = {rid for rid, _, why in events if why is not None}
        self.running = [s for s in self.running if s.rid not in done]
        return kind, events

    # ------------------------------------------------------------------ model calls
    def _prefill(self, s: _Seq) -> Event:
        from transformers import DynamicCache

        n = len(s.prompt)
        cache = DynamicCache()
        out = self.model(input_ids=torch.tensor([s.prompt]), use_cache=True, **{self._cache_kw: cache})
        cap = s.footprint
        for layer in range(self.layers):
            k, v = _layer_kv(cache, layer)
            kk = torch.empty(self.kv_heads, cap, self.head_dim, dtype=k.dtype)
            vv = torch.empty_like(kk)
            kk[:, :n] = k[0]
            vv[:, :n] = v[0]
            s.k.append(kk)
            s.v.append(vv)
        s.n = n
        return self._emit(s, out.logits[0, -1])

    def _decode(self) -> list[Event]:
        from transformers import DynamicCache

        seqs = self.running
        b, lmax = len(seqs), max(s.n for s in seqs)
        shape = (b, self.kv_heads, lmax, self.head_dim)
        layers = []
        for layer in range(self.layers):
            k = torch.zeros(shape, dtype=seqs[0].k[layer].dtype)
            v = torch.zeros_like(k)
            for i, s in enumerate(seqs):
                k[i, :, lmax - s.n:] = s.k[layer][:, :s.n]
                v[i, :, lmax - s.n:] = s.v[layer][:, :s.n]
            layers.append((k, v))
        mask = torch.zeros(b, lmax + 1, dtype=torch.long)
        for i, s in enumerate(seqs):
            mask[i, lmax - s.n:] = 1
        ids = torch.tensor([[s.out[-1]] for s in seqs])
        pos = torch.tensor([[s.n] for s in seqs])
        cache = DynamicCache(ddp_cache_data=layers)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         **{self._cache_kw: cache})
        for layer in range(self.layers):
            k, v = _layer_kv(cache, layer)
            for i, s in enumerate(seqs):
                s.k[layer][:, s.n] = k[i, :, -1]
                s.v[layer][:, s.n] = v[i, :, -1]
        events = []
        for i, s in enumerate(seqs):
            s.n += 1
            events.append(self._emit(s, out.logits[i, -1]))
        return events

    def _emit(self, s: _Seq, logits: torch.Tensor) -> Event:
        tok = _sample(logits, s.params, s.gen)
        s.out.append(tok)
        why = None
        if tok == EOS and not s.params.ignore_eos:
            why = "stop"
        elif len(s.out) >= s.params.max_tokens:
            why = "length"
        return s.rid, tok, why


def _layer_kv(cache: object, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of one layer, (batch, kv_heads, tokens, head_dim), across cache APIs."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[layer].keys, layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]  # type: ignore[attr-defined]


def _sample(logits: torch.Tensor, p: GenParams, gen: torch.Generator | None) -> int:
    if p.temperature <= 0 or gen is None:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / p.temperature, dim=-1)
    if p.top_p < 1.0:
        sorted_p, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < p.top_p
        probs = torch.zeros_like(probs).scatter(0, idx[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))
