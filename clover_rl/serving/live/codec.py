"""KServe v2 / Open Inference Protocol tensor coding, JSON and Triton's binary extension.

The binary extension matters: a vision request is 8 x 224 x 224 x 3 bytes, which as a JSON list
of integers costs ~100 ms to parse in Python; ``tritonclient.http`` sends binary by default.
Layout: the JSON header, then each binary tensor in input order; the header's length is in the
``Inference-Header-Content-Length`` HTTP header and each binary tensor has
``parameters.binary_data_size``. BYTES tensors are serialised as 4-byte little-endian length +
bytes per element.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

HEADER = "Inference-Header-Content-Length"

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}


class CodecError(ValueError):
    """A malformed inference request; the front end answers 400 with this message."""


# Parameters this server acts on (KServe v2 / Triton HTTP names); anything else is refused
# with 400 naming it, never silently ignored. ``timeout`` is Triton's per-request deadline in
# microseconds (``tritonclient ... infer(timeout=...)``).
REQUEST_PARAMETERS = ("binary_data_output", "timeout")
INPUT_PARAMETERS = ("binary_data_size",)
OUTPUT_PARAMETERS = ("binary_data",)
_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


def _check_parameters(params: Any, allowed: tuple[str, ...], where: str) -> dict:
    """``params`` as a dict; CodecError naming each parameter this server does not support."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise CodecError(f"{where}: 'parameters' must be an object")
    extra = [k for k in params if k not in allowed]
    if extra:
        why = ("the shared-memory extension is not supported" if set(extra) & set(_SHARED_MEMORY)
               else f"supported: {', '.join(allowed)}")
        raise CodecError(f"{where}: unsupported parameter{'s' if len(extra) > 1 else ''} "
                         f"{', '.join(repr(k) for k in extra)} ({why})")
    return params


_NAMES = {np.dtype(dt): name for name, dt in DTYPES.items() if dt is not np.object_}


def datatype_of(a: np.ndarray) -> str:
    name = _NAMES.get(a.dtype)
    if name is not None:
        return name
    if a.dtype == np.object_ or a.dtype.kind in ("S", "U"):
        return "BYTES"
    raise CodecError(f"unsupported output dtype {a.dtype}")


@dataclass
class InferRequest:
    """A decoded request: inputs by name, and how each output is to be returned."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: dict[str, bool] | None = None  # requested name -> binary; None = all
    binary_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None  # the client's deadline (request parameter ``timeout``, us)


def _to_bytes(x: Any) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode()
    return str(x).encode()


def deserialize_bytes(buf: bytes | memoryview, count: int | None = None) -> np.ndarray:
    out: list[bytes] = []
    mv = memoryview(buf)
    i = 0
    while i < len(mv):
        if i + 4 > len(mv):
            raise CodecError("truncated BYTES tensor (length prefix)")
        (n,) = struct.unpack_from("<I", mv, i)
        i += 4
        if i + n > len(mv):
            raise CodecError("truncated BYTES tensor (element)")
        out.append(bytes(mv[i:i + n]))
        i += n
    arr = np.empty(len(out), dtype=np.object_)
    arr[:] = out
    if count is not None and len(out) != count:
        raise CodecError(f"BYTES tensor has {len(out)} elements, shape says {count}")
    return arr


def serialize_bytes(a: np.ndarray) -> bytes:
    parts = []
    for x in a.reshape(-1):
        b = _to_bytes(x)
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _shape(t: dict, where: str) -> list[int]:
    shape = t.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CodecError(f"{where}: 'shape' must be a list of non-negative integers")
    return shape


class _Plan(NamedTuple):
    """A parsed JSON header whose inputs are all binary: what decoding the next body with the
    same header needs (clients send the same header for every request of a given shape)."""

    tensors: tuple[tuple[str, Any, tuple[int, ...], int, int], ...]  # name, dtype, shape, offset, size
    end: int  # binary bytes the tensors span
    request: InferRequest  # inputs empty; the rest shared by every request decoded from the plan


class RequestDecoder:
    """Decodes v2 infer request bodies, checking each with ``check(inputs)`` (which raises
    CodecError), and remembers plans: a JSON header seen before whose inputs were all binary
    numeric and that had no request id is neither parsed nor checked again (at most
    ``max_plans`` headers). Requests decoded from a plan share ``outputs`` and ``parameters``:
    read them, never change them. Binary numeric inputs are read-only views of ``body``."""

    def __init__(self, check: Any = None, max_plans: int = 256) -> None:
        self.check = check
        self.max_plans = max_plans
        self.plans: dict[bytes, _Plan] = {}

    def planned(self, body: bytes, header_length: int | str | bytes | None) -> tuple[dict[str, np.ndarray], InferRequest] | None:
        """A body whose JSON header has a plan: (inputs, the plan's request -- shared, inputs
        empty); None for any other (:meth:`decode` then parses and checks it)."""
        if header_length is None or not self.plans:
            return None
        try:
            hl = int(header_length)
        except ValueError:
            return None
        if not 0 <= hl < len(body):
            return None
        plan = self.plans.get(body[:hl] if type(body) is bytes else bytes(body[:hl]))
        if plan is None or len(body) - hl < plan.end:
            return None
        inputs = {}
        for name, dt, shape, off, size in plan.tensors:  # read-only views: the workers get copies
            inputs[name] = np.frombuffer(body, dt, size // dt.itemsize, hl + off).reshape(shape)
        return inputs, plan.request

    def decode(self, body: bytes, header_length: int | str | None = None) -> InferRequest:
        hit = self.planned(body, header_length)
        if hit is not None:
            r = hit[1]
            return InferRequest(r.id, hit[0], r.outputs, r.binary_default, r.parameters, r.timeout_s)
        try:
            hl = int(header_length) if header_length is not None else len(body)
        except ValueError:
            raise CodecError(f"bad {HEADER} header: {header_length!r}") from None
        if hl < 0 or hl > len(body):
            raise CodecError(f"{HEADER}={hl} is outside the body of {len(body)} bytes")
        raw = body[:hl] if hl < len(body) else body
        if not isinstance(raw, bytes):
            raw = bytes(raw)
        req, layout, end = _decode(body, hl, raw)
        if self.check is not None:
            self.check(req.inputs)
        if (layout is not None and req.id is None and hl < len(body) and len(self.plans) < self.max_plans
                and len(req.inputs) == len(layout)):  # a header with a request id is never seen again
            self.plans[raw] = _Plan(tuple(layout), end, InferRequest(None, {}, req.outputs, req.binary_default,
                                                                   req.parameters, req.timeout_s))
        return req


_DECODER = RequestDecoder()


def decode_request(body: bytes, header_length: int | str | None = None) -> InferRequest:
    """Parse a v2 infer request body (JSON, or JSON header + binary tensors); see
    :class:`RequestDecoder` (this one checks nothing beyond the protocol)."""
    return _DECODER.decode(body, header_length)


def _decode(body: bytes, hl: int, raw: bytes) -> tuple[InferRequest, list | None, int]:
    """The request, the plan's tensor layout (None if an input is not binary numeric) and the
    binary bytes it spans."""
    try:
        head = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CodecError(f"request body is not valid JSON ({e})") from None
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list) or not head["inputs"]:
        raise CodecError("request must be a JSON object with a non-empty 'inputs' list")
    params = _check_parameters(head.get("parameters"), REQUEST_PARAMETERS, "request")
    timeout_s = None
    if "timeout" in params:
        t = params["timeout"]
        if isinstance(t, bool) or not isinstance(t, int) or t <= 0:
            raise CodecError(f"request: parameter 'timeout' must be a positive integer of microseconds, got {t!r}")
        timeout_s = t / 1e6
    binary = memoryview(body)[hl:]
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    layout: list | None = []  # for the plan; None once an input is not binary numeric
    for i, t in enumerate(head["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise CodecError(f"{where}: needs a 'name'")
        where = f"input {t['name']!r}"
        dt = t.get("datatype")
        if dt not in DTYPES:
            raise CodecError(f"{where}: unknown datatype {dt!r} (known: {', '.join(DTYPES)})")
        shape = _shape(t, where)
        count = math.prod(shape)
        size = _check_parameters(t.get("parameters"), INPUT_PARAMETERS, where).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise CodecError(f"{where}: binary_data_size {size!r} runs past the body")
            chunk = binary[offset:offset + size]
            if dt == "BYTES":
                arr = deserialize_bytes(chunk, count)
                layout = None
            else:
                item = np.dtype(DTYPES[dt]).itemsize
                if size != count * item:
                    raise CodecError(f"{where}: {size} bytes do not fill shape {shape} of {dt}")
                arr = np.frombuffer(chunk, dtype=DTYPES[dt])
                if layout is not None:
                    layout.append((t["name"], np.dtype(DTYPES[dt]), tuple(shape), offset, size))
            offset += size
        else:
            layout = None
            if "data" not in t:
                raise CodecError(f"{where}: needs 'data' (or binary_data_size)")
            data = t["data"]
            try:
                if dt == "BYTES":
                    flat = np.asarray(data, dtype=np.object_).reshape(-1)
                    arr = np.empty(flat.size, dtype=np.object_)
                    arr[:] = [_to_bytes(x) for x in flat]
                else:
                    arr = np.asarray(data, dtype=DTYPES[dt]).reshape(-1)
            except (ValueError, TypeError, OverflowError) as e:
                raise CodecError(f"{where}: data does not convert to {dt} ({e})") from None
            if arr.size != count:
                raise CodecError(f"{where}: {arr.size} values do not fill shape {shape}")
        inputs[t["name"]] = arr.reshape(shape)
    outputs = None
    if isinstance(head.get("outputs"), list):
        outputs = {}
        for o in head["outputs"]:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise CodecError("each requested output needs a 'name'")
            op = _check_parameters(o.get("parameters"), OUTPUT_PARAMETERS, f"output {o['name']!r}")
            outputs[o["name"]] = bool(op.get("binary_data", False))
    rid = head.get("id")
    req = InferRequest(
        id=str(rid) if rid is not None else None,
        inputs=inputs,
        outputs=outputs,
        binary_default=bool(params.get("binary_data_output", False)),
        parameters=params,
        timeout_s=timeout_s,
    )
    return req, layout, offset


def _json_data(a: np.ndarray) -> list:
    if a.dtype == np.object_ or a.dtype.kind in ("S", "U"):
        return [_to_bytes(x).decode("utf-8", "replace") for x in a.reshape(-1)]
    return a.reshape(-1).tolist()


def _encode_tensor(name: str, a: np.ndarray, binary: bool, blobs: list[bytes]) -> dict[str, Any]:
    """One tensor's JSON entry; binary data goes to ``blobs`` (the binary tensor extension)."""
    t: dict[str, Any] = {"name": name, "datatype": datatype_of(a), "shape": list(a.shape)}
    if binary:
        raw = serialize_bytes(a) if t["datatype"] == "BYTES" else np.ascontiguousarray(a).tobytes()
        t["parameters"] = {"binary_data_size": len(raw)}
        blobs.append(raw)
    else:
        t["data"] = _json_data(a)
    return t


def encode_response(
    model_name: str,
    outputs: dict[str, np.ndarray],
    request: InferRequest,
    parameters: dict[str, Any] | None = None,
    model_version: str = "1",
) -> tuple[bytes, int | None]:
    """Body and header length (None = plain JSON) for the requested outputs."""
    names = list(outputs) if request.outputs is None else list(request.outputs)
    head: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        head["id"] = request.id
    if parameters:
        head["parameters"] = parameters
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for n in names:
        if n not in outputs:
            raise CodecError(f"unknown output {n!r} (known: {', '.join(outputs)})")
        binary = request.binary_default if request.outputs is None else request.outputs[n]
        items.append(_encode_tensor(n, outputs[n], binary, blobs))
    head["outputs"] = items
    js = json.dumps(head, separators=(",", ":")).encode()
    if not blobs:
        return js, None
    return js + b"".join(blobs), len(js)


_MARK = "@@service_ms@@"


class ResponseEncoder:
    """:func:`encode_response` for one model with the front end's parameters (variant, slice,
    service_ms), from templates: when every requested output is binary numeric and the request
    has no id, the JSON header is the same for every answer of a given (outputs, shapes,
    variant, slice) but for ``service_ms``, so it is rendered once and reused (at most
    ``max_templates``). Anything else goes through :func:`encode_response`; the bytes are
    identical either way."""

    def __init__(self, model_name: str, model_version: str = "1", max_templates: int = 256) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.max_templates = max_templates
        self.templates: dict[tuple, tuple[bytes, bytes, tuple[str, ...]] | None] = {}

    def encode(self, outputs: dict[str, np.ndarray], request: InferRequest, variant: str, slot: str,
               service_ms: float) -> tuple[bytes, int | None]:
        """Body and header length (None = plain JSON), as :func:`encode_response`."""
        ro = request.outputs
        t = None
        if request.id is None and math.isfinite(service_ms):
            shapes = []
            for k, a in outputs.items():  # a loop, not a comprehension: this runs per request
                shapes.append((k, a.dtype, a.shape))
            key = (request.binary_default, tuple(ro.items()) if ro is not None else None, variant, slot,
                   tuple(shapes))
            t = self.templates.get(key, False)
            if t is False:
                t = self._template(outputs, request, variant, slot)
                if len(self.templates) < self.max_templates:
                    self.templates[key] = t
        if t is None:
            return encode_response(self.model_name, outputs, request,
                                   {"variant": variant, "slice": slot, "service_ms": service_ms}, self.model_version)
        prefix, suffix, names = t
        js = b"%s%r%s" % (prefix, service_ms, suffix)
        if len(names) == 1:
            return js + outputs[names[0]].tobytes(), len(js)
        blobs = [js]
        for n in names:
            blobs.append(outputs[n].tobytes())
        return b"".join(blobs), len(js)

    def _template(self, outputs: dict[str, np.ndarray], request: InferRequest, variant: str,
                  slot: str) -> tuple[bytes, bytes, tuple[str, ...]] | None:
        names = tuple(outputs) if request.outputs is None else tuple(request.outputs)
        items = []
        for n in names:
            a = outputs.get(n)
            binary = request.binary_default if request.outputs is None else request.outputs[n]
            if a is None or not binary or a.dtype not in _NAMES:
                return None
            items.append({"name": n, "datatype": _NAMES[a.dtype], "shape": list(a.shape),
                          "parameters": {"binary_data_size": a.nbytes}})
        head = {"model_name": self.model_name, "model_version": self.model_version,
                "parameters": {"variant": variant, "slice": slot, "service_ms": _MARK}, "outputs": items}
        parts = json.dumps(head, separators=(",", ":")).encode().split(json.dumps(_MARK).encode())
        return (parts[0], parts[1], names) if len(parts) == 2 and items else None


def encode_request(
    inputs: dict[str, np.ndarray],
    request_id: str | None = None,
    binary: bool = True,
    binary_output: bool = True,
) -> tuple[bytes, int | None]:
    """Client side (load generator): the body of an infer request and its header length."""
    head: dict[str, Any] = {}
    if request_id is not None:
        head["id"] = request_id
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for n, a in inputs.items():
        items.append(_encode_tensor(n, a, binary, blobs))
    head["inputs"] = items
    if binary_output:
        head["parameters"] = {"binary_data_output": True}
    js = json.dumps(head, separators=(",", ":")).encode()
    if not blobs:
        return js, None
    return js + b"".join(blobs), len(js)
