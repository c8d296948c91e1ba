"""Model sources built in-process (no workers): real architectures with random weights, and
one-line errors for sources that cannot be built offline."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.services import ServiceSpec, load_service
from clover_rl.serving.live.codec import CodecError
from clover_rl.serving.live.models import (
    HashingTokenizer,
    check_inputs,
    io_spec,
    load_model,
    synthetic_inputs,
)
from tests.support.live import tiny_albert


def _with_source(service: str, **source: object) -> ServiceSpec:
    d = load_service(service).model_dump()
    for v in d["variants"]:
        v["source"] = dict(source)
    return ServiceSpec.model_validate(d)


def test_efficientnet_b1_low_resolution_random_weights() -> None:
    svc = load_service("efficientnet")
    m = load_model(svc, "b1", "cpu", input_scale=0.15)  # 240 px native -> 36 px
    assert m.weights == "random" and "36px" in m.detail
    x = {"INPUT__0": np.random.default_rng(0).integers(0, 256, (2, 50, 40, 3), dtype=np.uint8)}
    y = m.servable.infer(x)["OUTPUT__0"]
    assert y.shape == (2, 1000) and y.dtype == np.float32 and np.isfinite(y).all()


def test_tiny_albert_answers_from_context_with_hashing_tokenizer() -> None:
    svc = tiny_albert()
    m = load_model(svc, "base", "cpu")
    assert "hashing" in m.detail and m.weights == "random"
    inputs = synthetic_inputs(svc, np.random.default_rng(1))
    out = m.servable.infer(inputs)
    assert out["start_logits"].shape == out["end_logits"].shape and out["start_logits"].shape[0] == 1
    words = set(inputs["context"][0].decode().split())
    assert out["answer"][0] and set(out["answer"][0].decode().split()) <= words


def test_hashing_tokenizer_is_deterministic() -> None:
    t = HashingTokenizer(1000)
    ids = t.ids(t.words("Carbon-aware serving, carbon!"))
    assert ids == t.ids(t.words("carbon-aware serving, CARBON!"))
    assert all(5 <= i < 1000 for i in ids) and ids[0] == ids[-2]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_and_python_sources(tmp_path) -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 5))
    path = tmp_path / "m.pt"
    torch.jit.script(net).save(str(path))
    svc = _with_source("efficientnet", kind="torchscript", name=str(path))
    y = load_model(svc, "b1", input_scale=0.2).servable.infer({"INPUT__0": np.zeros((3, 8, 8, 3), np.uint8)})
    assert y["OUTPUT__0"].shape == (3, 5)
    svc = _with_source("efficientnet", kind="python", name="torch.nn:Identity")
    y = load_model(svc, "b1", input_scale=0.2).servable.infer({"INPUT__0": np.zeros((1, 8, 8, 3), np.uint8)})
    assert y["OUTPUT__0"].shape == (1, 3 * 48 * 48)  # flattened image at 240 * 0.2 px


@pytest.mark.parametrize("source, msg", [
    ({"kind": "torchhub", "repo": "ultralytics/yolov5", "name": "yolov5l"}, "needs network access or a local hub cache"),
    ({"kind": "timm", "name": "resnet18"}, None),
    ({"kind": "torchvision", "name": "resnet18"}, None),
    ({"kind": "onnx", "name": "/nonexistent/model.onnx"}, "ONNX file not found"),
    ({"kind": "torchscript", "name": "/nonexistent/model.pt"}, "TorchScript file not found"),
    ({"kind": "python", "name": "no_colon"}, "module:function"),
    ({"kind": "efficientnet_pytorch", "name": "efficientnet-b99"}, "cannot build"),
    ({"kind": "efficientnet_pytorch", "name": "efficientnet-b0", "weights": "/nonexistent.pth"}, "weights file not found"),
    ({"kind": "noop", "name": "noop", "kwargs": {"bogus": 1}}, "bad kwargs"),
])
def test_unbuildable_sources_give_one_line_errors(source: dict, msg: str | None, monkeypatch, tmp_path) -> None:
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    svc = _with_source("efficientnet", **source)
    try:
        m = load_model(svc, "b1", input_scale=0.15)
    except ConfigError as e:
        assert "\n" not in str(e)
        if msg is not None:
            assert msg in str(e)
        else:  # optional packages: only acceptable error is "not installed"
            assert "not installed" in str(e)
        return
    assert msg is None, "expected an error"
    assert m.servable.infer({"INPUT__0": np.zeros((1, 8, 8, 3), np.uint8)})["OUTPUT__0"].shape[0] == 1


def test_io_spec_and_input_checks() -> None:
    vis, txt = load_service("efficientnet"), tiny_albert()
    assert [t.to_dict() for t in io_spec(vis)[0]] == [{"name": "INPUT__0", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    assert [(t.name, t.datatype) for t in io_spec(txt)[0]] == [("question", "BYTES"), ("context", "BYTES")]
    check_inputs(vis, {"INPUT__0": np.zeros((8, 4, 4, 3), np.uint8)})
    with pytest.raises(CodecError, match=r"\[N, H, W, 3\]"):
        check_inputs(vis, {"INPUT__0": np.zeros((8, 4, 4), np.uint8)})
    with pytest.raises(CodecError, match="must be UINT8"):
        check_inputs(vis, {"INPUT__0": np.zeros((8, 4, 4, 3), np.float32)})
    with pytest.raises(CodecError, match="missing input 'context'"):
        check_inputs(txt, {"question": np.array([b"q"], dtype=object)})
