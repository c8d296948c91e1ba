"""Real models behind a service's variants, built from ``ModelSource`` inside a worker.

Weights are random unless ``source.weights`` names a local file: the live plane measures
latency and energy, which depend on the architecture, not on the weights; accuracy always comes
from the service catalog. Nothing here downloads (Hugging Face and torch hub are used offline).

The module imports torch lazily so the front end (which only needs :func:`io_spec` and
:func:`check_inputs`) and ``noop`` workers start fast.

Request tensors (the KServe v2 names the front end publishes):
- image services: ``INPUT__0`` UINT8 [N, H, W, 3] -> ``OUTPUT__0`` FP32 [N, classes] (logits).
  Each worker resizes to its variant's resolution times ``input_scale`` (the CPU-mode knob).
- text (QA) services: ``question`` and ``context`` BYTES [B] -> ``start_logits``/``end_logits``
  FP32 [B, L] and ``answer`` BYTES [B] (the best span of the context).
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clover_rl.errors import ConfigError
from clover_rl.services import ModelSource, ServiceSpec, Variant
from clover_rl.serving.live.codec import CodecError

log = logging.getLogger("clover_rl.serving.live")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 64 * 1024 * 1024  # per request; larger inputs are refused with 400


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def io_spec(service: ServiceSpec) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The (inputs, outputs) the front end publishes in the model metadata."""
    if service.request.kind == "image":
        return (TensorSpec("INPUT__0", "UINT8", (-1, -1, -1, 3)),), (TensorSpec("OUTPUT__0", "FP32", (-1, -1)),)
    return (
        (TensorSpec("question", "BYTES", (-1,)), TensorSpec("context", "BYTES", (-1,))),
        (TensorSpec("start_logits", "FP32", (-1, -1)), TensorSpec("end_logits", "FP32", (-1, -1)),
         TensorSpec("answer", "BYTES", (-1,))),
    )


def check_inputs(service: ServiceSpec, inputs: dict[str, np.ndarray]) -> None:
    """Refuse a request the workers could not serve (the front end answers 400)."""
    specs, _ = io_spec(service)
    want = {s.name: s for s in specs}
    extra = set(inputs) - set(want)
    if extra:
        raise CodecError(f"unknown input {min(extra)!r} (expected: {', '.join(want)})")
    for name, spec in want.items():
        if name not in inputs:
            raise CodecError(f"missing input {name!r} (expected: {', '.join(want)})")
        a = inputs[name]
        if spec.datatype == "BYTES":
            if a.dtype != np.object_:
                raise CodecError(f"input {name!r} must be BYTES")
        elif a.dtype != np.uint8:
            raise CodecError(f"input {name!r} must be {spec.datatype}, got {a.dtype}")
    if service.request.kind == "image":
        a = inputs["INPUT__0"]
        if a.ndim != 4 or a.shape[3] != 3 or min(a.shape[:3]) < 1:
            raise CodecError(f"input 'INPUT__0' must have shape [N, H, W, 3], got {list(a.shape)}")
        if a.size > MAX_PIXELS:
            raise CodecError(f"input 'INPUT__0' has {a.size} values; the limit is {MAX_PIXELS}")
    else:
        q, c = inputs["question"], inputs["context"]
        if q.size < 1 or q.size != c.size:
            raise CodecError(f"'question' and 'context' must have the same non-zero size, got {q.size} and {c.size}")


_WORDS = ["grid", "carbon", "energy", "model", "slice", "request", "latency", "power", "accuracy", "network", "image", "answer", "question", "server", "cluster", "region", "hour", "solar", "wind", "coal", "demand", "policy", "agent"]


def synthetic_inputs(service: ServiceSpec, rng: np.random.Generator, image_size: int | None = None) -> dict[str, np.ndarray]:
    """A request of the service's shape (batch of images, or one question + context)."""
    r = service.request
    if r.kind == "image":
        h = image_size or r.height or 224
        w = image_size or r.width or 224
        return {"INPUT__0": rng.integers(0, 256, size=(r.batch, h, w, 3), dtype=np.uint8)}
    n_ctx = max(8, int((r.max_seq_len or 384) * 0.6))
    q = np.empty(r.batch, dtype=np.object_)
    c = np.empty(r.batch, dtype=np.object_)
    for i in range(r.batch):
        q[i] = ("which " + " ".join(rng.choice(_WORDS, 6)) + "?").encode()
        c[i] = " ".join(rng.choice(_WORDS, n_ctx)).encode()
    return {"question": q, "context": c}


class Servable(Protocol):
    """What a worker calls: numpy tensors in, numpy tensors out."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class LoadedModel:
    servable: Servable
    weights: str  # "random" or the file it came from
    detail: str  # one line for the log: architecture, resolution, tokenizer


# --------------------------------------------------------------------------- noop
class NoopServable:
    """Answers at once (or after ``delay_ms``): measures the serving plane's own overhead."""

    def __init__(self, service: ServiceSpec, delay_ms: float = 0.0, classes: int = 1):
        self.kind = service.request.kind
        self.delay_s = float(delay_ms) / 1000.0
        self.classes = int(classes)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.kind == "image":
            n = inputs["INPUT__0"].shape[0]
            return {"OUTPUT__0": np.zeros((n, self.classes), dtype=np.float32)}
        b = inputs["question"].size
        ans = np.empty(b, dtype=np.object_)
        ans[:] = [b""] * b
        z = np.zeros((b, 1), dtype=np.float32)
        return {"start_logits": z, "end_logits": z, "answer": ans}


# --------------------------------------------------------------------------- vision
class VisionServable:
    """UINT8 NHWC batch -> resize to the variant's resolution -> normalise -> logits."""

    def __init__(self, fn: Callable[[Any], Any], resolution: int, device: str):
        import torch

        self.torch = torch
        self.fn = fn
        self.resolution = resolution
        self.device = torch.device(device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(inputs["INPUT__0"])).to(self.device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if x.shape[-2:] != (self.resolution, self.resolution):
                x = torch.nn.functional.interpolate(x, size=(self.resolution, self.resolution),
                                                    mode="bilinear", align_corners=False)
            x = (x - self.mean) / self.std
            y = self.fn(x)
            if isinstance(y, (tuple, list)):
                y = y[0]
            if isinstance(y, dict):
                y = next(iter(y.values()))
            out = y.float().cpu().numpy()
        if out.ndim == 1:
            out = out[:, None]
        elif out.ndim > 2:
            out = out.reshape(out.shape[0], -1)
        return {"OUTPUT__0": out}


# --------------------------------------------------------------------------- text (QA)
class HashingTokenizer:
    """Deterministic word-level tokenizer for offline runs without the model's vocabulary.

    Ids are ``5 + crc32(word) mod (vocab - 5)`` (0-4 are ALBERT's pad/unk/cls/sep/mask), so every
    process maps text identically. Compute cost matches a real tokenizer's sequence length; the
    answers are meaningless, as with random weights anyway.
    """

    PAD, UNK, CLS, SEP = 0, 1, 2, 3
    name = "hashing (no local tokenizer)"

    def __init__(self, vocab_size: int):
        self.vocab_size = max(6, int(vocab_size))

    @staticmethod
    def words(text: str) -> list[str]:
        return re.findall(r"\w+|[^\w\s]", text.lower())

    def ids(self, words: list[str]) -> list[int]:
        return [5 + zlib.crc32(w.encode()) % (self.vocab_size - 5) for w in words]


class QuestionAnsweringServable:
    """(question, context) pairs -> start/end logits and the best context span."""

    def __init__(self, model: Any, max_len: int, device: str, tokenizer: Any = None, vocab_size: int = 30000):
        import torch

        self.torch = torch
        self.model = model
        self.max_len = max(8, int(max_len))
        self.device = torch.device(device)
        self.hf = tokenizer
        self.hashing = HashingTokenizer(vocab_size)

    def _encode(self, q: str, c: str) -> tuple[list[int], list[int], list[str] | None, int]:
        """Token ids, token types, context pieces (hashing) and where the context starts."""
        if self.hf is not None:
            enc = self.hf(q, c, truncation="only_second", max_length=self.max_len)
            ids = list(enc["input_ids"])
            types = list(enc.get("token_type_ids") or [0] * len(ids))
            start = types.index(1) if 1 in types else len(ids)
            return ids, types, None, start
        qw = self.hashing.words(q)[: self.max_len // 2]
        cw = self.hashing.words(c)[: max(0, self.max_len - len(qw) - 3)]
        h = self.hashing
        ids = [h.CLS] + h.ids(qw) + [h.SEP] + h.ids(cw) + [h.SEP]
        types = [0] * (len(qw) + 2) + [1] * (len(cw) + 1)
        return ids, types, cw, len(qw) + 2

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        qs = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in inputs["question"].reshape(-1)]
        cs = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in inputs["context"].reshape(-1)]
        encs = [self._encode(q, c) for q, c in zip(qs, cs)]
        length = max(len(e[0]) for e in encs)
        ids = np.zeros((len(encs), length), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, (t, ty, _, _) in enumerate(encs):
            ids[i, : len(t)] = t
            types[i, : len(t)] = ty
            mask[i, : len(t)] = 1
        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(ids).to(self.device),
                             attention_mask=torch.from_numpy(mask).to(self.device),
                             token_type_ids=torch.from_numpy(types).to(self.device))
            s = out.start_logits.float().cpu().numpy()
            e = out.end_logits.float().cpu().numpy()
        answers = np.empty(len(encs), dtype=np.object_)
        for i, (t, _, pieces, c0) in enumerate(encs):
            c1 = len(t) - 1  # last [SEP]
            if c1 <= c0:
                answers[i] = b""
                continue
            a = c0 + int(np.argmax(s[i, c0:c1]))
            b = a + int(np.argmax(e[i, a:min(c1, a + 30)]))
            if pieces is not None:
                answers[i] = " ".join(pieces[a - c0 : b - c0 + 1]).encode()
            else:
                answers[i] = self.hf.decode(t[a : b + 1]).encode()
        return {"start_logits": s, "end_logits": e, "answer": answers}


# --------------------------------------------------------------------------- builders
def _load_state(model: Any, weights: str) -> None:
    import torch

    p = Path(weights).expanduser()
    if not p.is_file():
        raise ConfigError(f"weights file not found: {p}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"cannot read weights {p}: {str(e).splitlines()[0]}") from None
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    try:
        model.load_state_dict(sd)
    except Exception as e:
        raise ConfigError(f"weights {p} do not fit {type(model).__name__}: {str(e).splitlines()[0]}") from None


def _import(module: str, kind: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"model source kind {kind!r} needs the {module!r} package, which is not installed") from None


def _torch_module(src: ModelSource) -> Any:
    """An nn.Module (or callable) for the vision/python/file kinds."""
    kind = src.kind
    if kind == "efficientnet_pytorch":
        mod = _import("efficientnet_pytorch", kind)
        try:
            m = mod.EfficientNet.from_name(src.name, **src.kwargs)
        except (ValueError, AssertionError, TypeError) as e:
            raise ConfigError(f"efficientnet_pytorch cannot build {src.name!r}: {e}") from None
    elif kind == "torchvision":
        tv = _import("torchvision", kind)
        try:
            m = tv.models.get_model(src.name, weights=None, **src.kwargs)
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"torchvision cannot build {src.name!r}: {e}") from None
    elif kind == "timm":
        timm = _import("timm", kind)
        try:
            m = timm.create_model(src.name, pretrained=False, **src.kwargs)
        except (RuntimeError, ValueError, TypeError) as e:
            raise ConfigError(f"timm cannot build {src.name!r}: {e}") from None
    elif kind == "torchscript":
        import torch

        p = Path(src.weights or src.name).expanduser()
        if not p.is_file():
            raise ConfigError(f"TorchScript file not found: {p}")
        return torch.jit.load(str(p), map_location="cpu").eval()
    elif kind == "torchhub":
        m = _torchhub(src)
    elif kind == "python":
        m = _python_entry(src)
    else:
        raise ConfigError(f"model source kind {kind!r} cannot serve an image service")
    if src.weights and kind != "torchscript":
        _load_state(m, src.weights)
    return m.eval() if hasattr(m, "eval") else m


def _torchhub(src: ModelSource) -> Any:
    import torch

    if not src.repo:
        raise ConfigError(f"torchhub source {src.name!r} needs 'repo' (owner/name)")
    repo = Path(src.repo).expanduser()
    if not repo.is_dir():
        owner, _, name = src.repo.partition("/")
        hub = Path(torch.hub.get_dir())
        found = sorted(hub.glob(f"{owner}_{name.split(':')[0]}_*"))
        if not found:
            raise ConfigError(
                f"torchhub model {src.repo}:{src.name} needs network access or a local hub cache "
                f"({hub}/{owner}_{name}_<branch>); none found"
            )
        repo = found[0]
    kwargs = {"pretrained": False, **src.kwargs} if src.weights is None else dict(src.kwargs)
    try:
        return torch.hub.load(str(repo), src.name, source="local", **kwargs)
    except Exception as e:
        raise ConfigError(f"torchhub {repo}:{src.name} failed to load: {str(e).splitlines()[0]}") from None


def _python_entry(src: ModelSource) -> Any:
    mod_name, _, fn_name = src.name.partition(":")
    if not mod_name or not fn_name:
        raise ConfigError(f"python model source {src.name!r} must be 'module:function'")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"python model source {src.name!r}: cannot import {mod_name!r} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"python model source {src.name!r}: {fn_name!r} is not a function of {mod_name}")
    return fn(**src.kwargs)


class _OnnxFn:
    def __init__(self, path: Path):
        ort = _import("onnxruntime", "onnx")
        self.sess = ort.InferenceSession(str(path), providers=ort.get_available_providers())
        self.input = self.sess.get_inputs()[0].name

    def __call__(self, x: Any) -> Any:
        import torch

        return torch.from_numpy(self.sess.run(None, {self.input: x.cpu().numpy()})[0])


def _albert(src: ModelSource, device: str) -> tuple[Any, Any, str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tr = _import("transformers", "huggingface")
    if src.weights and Path(src.weights).expanduser().is_dir():
        model = tr.AlbertForQuestionAnswering.from_pretrained(str(Path(src.weights).expanduser()), local_files_only=True)
    else:
        try:
            cfg = tr.AlbertConfig(**src.kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"AlbertConfig rejects kwargs of {src.name!r}: {e}") from None
        model = tr.AlbertForQuestionAnswering(cfg)
        if src.weights:
            _load_state(model, src.weights)
    tokenizer = None
    for where in ([src.weights] if src.weights and Path(src.weights).expanduser().is_dir() else []) + [src.name]:
        try:
            tokenizer = tr.AutoTokenizer.from_pretrained(where, local_files_only=True)
            tok_name = f"{where} (local)"
            break
        except Exception:
            continue
    if tokenizer is None:
        tok_name = HashingTokenizer.name
    return model.eval().to(device), tokenizer, tok_name


def scaled(n: int, scale: float, floor: int) -> int:
    return max(floor, round(n * scale))


def load_model(service: ServiceSpec, variant: Variant | str, device: str = "cpu", input_scale: float = 1.0) -> LoadedModel:
    """Build a variant's servable on ``device`` ("cpu" or "cuda").

    ``input_scale`` shrinks the vision resolution / text sequence length (CPU emulation knob).
    """
    v = service.variant(variant) if isinstance(variant, str) else variant
    src = v.source
    if not (0 < input_scale <= 1.0) or not math.isfinite(input_scale):
        raise ConfigError(f"input scale must be in (0, 1], got {input_scale}")
    if src.kind == "noop":
        try:
            return LoadedModel(NoopServable(service, **src.kwargs), "none", "noop")
        except TypeError as e:
            raise ConfigError(f"noop source of variant {v.name}: bad kwargs ({e})") from None
    weights = src.weights or "random"
    if service.request.kind == "text":
        if src.kind == "huggingface":
            model, tok, tok_name = _albert(src, device)
            vocab = int(src.kwargs.get("vocab_size", 30000))
            seq = scaled(service.request.max_seq_len or 384, input_scale, 16)
            return LoadedModel(QuestionAnsweringServable(model, seq, device, tok, vocab), weights,
                               f"{src.name} seq {seq}, tokenizer {tok_name}")
        if src.kind == "python":
            obj = _python_entry(src)
            if not hasattr(obj, "infer"):
                raise ConfigError(f"python source {src.name!r} for a text service must return an object with infer(inputs)")
            return LoadedModel(obj, weights, src.name)
        raise ConfigError(f"model source kind {src.kind!r} cannot serve text service {service.name!r}")
    native = v.resolution or service.request.height or 224
    res = scaled(native, input_scale, 32)
    if src.kind == "huggingface":
        raise ConfigError(f"huggingface sources serve text services only (variant {v.name})")
    if src.kind == "onnx":
        p = Path(src.weights or src.name).expanduser()
        if not p.is_file():
            raise ConfigError(f"ONNX file not found: {p}")
        fn: Any = _OnnxFn(p)
    else:
        fn = _torch_module(src)
        if src.kind == "python" and hasattr(fn, "infer"):
            return LoadedModel(fn, weights, src.name)
        if hasattr(fn, "to"):
            fn = fn.to(device)
    return LoadedModel(VisionServable(fn, res, device), weights, f"{src.kind}:{src.name} at {res}px (native {native})")
