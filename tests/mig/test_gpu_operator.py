"""The GPU-operator MIG adapter against a loopback stand-in of the Kubernetes API.

Honest scope: the stand-in speaks the documented JSON of ``GET``/``PATCH /api/v1/nodes/<name>``
(merge patch of ``metadata.labels``) and ``GET``/``POST``/``PUT`` of a ConfigMap, and plays the
MIG manager's part only as far as its documented label protocol goes (it reads the named config
from the config map and moves ``nvidia.com/mig.config.state`` to ``success`` / ``failed``, or
never). It does not emulate the operator, drains or GPUs.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.mig.gpu_operator import (
    CONFIG_LABEL,
    STATE_LABEL,
    GpuOperatorMig,
    KubeApi,
    node_config,
)

GPU = get_gpu("a100-40gb")
VARIANTS = ("b1", "b3", "b5", "b7")
CM = "/api/v1/namespaces/gpu-operator/configmaps"


def cfg(label: str) -> Any:
    return parse_configuration(label, GPU, VARIANTS)


class KubeStandIn:
    """Node ``gpu-node-1`` + config maps, and the MIG manager's label protocol (``mode``)."""

    def __init__(self, mode: str = "success", after_polls: int = 2) -> None:
        self.mode = mode  # success | failed | hang
        self.after_polls = after_polls
        self.labels: dict[str, str] = {"kubernetes.io/hostname": "gpu-node-1"}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str, Any]] = []
        self.applied: list[tuple[str, Any]] = []  # (config name, its entries) the "manager" read
        self.fail_patch: tuple[int, str] | None = None
        self.on_success: Any = None  # called with the applied entries (a test's "GPUs")
        self._polls = 0
        self._version = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n)) if n else None

            def do_GET(self) -> None:
                self._reply(*fake.handle("GET", self.path, None, self.headers))

            def do_PATCH(self) -> None:
                self._reply(*fake.handle("PATCH", self.path, self._body(), self.headers))

            def do_POST(self) -> None:
                self._reply(*fake.handle("POST", self.path, self._body(), self.headers))

            def do_PUT(self) -> None:
                self._reply(*fake.handle("PUT", self.path, self._body(), self.headers))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def node(self) -> dict[str, Any]:
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": "gpu-node-1", "labels": dict(self.labels), "resourceVersion": str(self._version)}}

    @staticmethod
    def status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                      "reason": reason, "code": code}

    def handle(self, method: str, path: str, body: Any, headers: Any) -> tuple[int, Any]:
        self.log.append((method, path, body))
        if path == "/api/v1/nodes/gpu-node-1":
            if method == "GET":
                self._manager_tick()
                return 200, self.node()
            if method == "PATCH":
                if headers.get("Content-Type") != "application/merge-patch+json":
                    return self.status(415, "UnsupportedMediaType", "unsupported patch type")
                if self.fail_patch:
                    return self.status(*self.fail_patch, "nodes \"gpu-node-1\" is forbidden: cannot patch")
                for k, v in body["metadata"]["labels"].items():
                    if v is None:
                        self.labels.pop(k, None)
                    else:
                        self.labels[k] = v
                self._version += 1
                self._polls = 0
                return 200, self.node()
        if path.startswith("/api/v1/nodes/"):
            return self.status(404, "NotFound", f"nodes \"{path.rsplit('/', 1)[-1]}\" not found")
        if path.startswith(CM):
            name = path[len(CM) + 1:] if len(path) > len(CM) else None
            if method == "GET":
                cm = self.config_maps.get(name or "")
                return (200, cm) if cm else self.status(404, "NotFound", f"configmaps \"{name}\" not found")
            if method == "POST":
                new = body["metadata"]["name"]
                if new in self.config_maps:
                    return self.status(409, "AlreadyExists", f"configmaps \"{new}\" already exists")
                body["metadata"]["resourceVersion"] = "1"
                self.config_maps[new] = body
                return 201, body
            if method == "PUT":
                old = self.config_maps.get(name or "")
                if old is None:
                    return self.status(404, "NotFound", f"configmaps \"{name}\" not found")
                if body["metadata"].get("resourceVersion") != old["metadata"]["resourceVersion"]:
                    return self.status(409, "Conflict", "the object has been modified")
                body["metadata"]["resourceVersion"] = str(int(old["metadata"]["resourceVersion"]) + 1)
                self.config_maps[name or ""] = body
                return 200, body
        return self.status(404, "NotFound", "not found")

    def _manager_tick(self) -> None:
        """The MIG manager's part: after a few polls, act on a pending label."""
        if self.labels.get(STATE_LABEL) != "pending" or self.mode == "hang":
            return
        self._polls += 1
        if self._polls < self.after_polls:
            return
        name = self.labels.get(CONFIG_LABEL, "")
        cm = self.config_maps.get("clover-mig-parted-config")
        configs = yaml.safe_load(cm["data"]["config.yaml"])["mig-configs"] if cm else {}
        if self.mode == "failed" or name not in configs:
            self.labels[STATE_LABEL] = "failed"
            return
        self.applied.append((name, configs[name]))
        if self.on_success is not None:
            self.on_success(configs[name])
        self.labels[STATE_LABEL] = "success"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    k = KubeStandIn()
    try:
        yield k
    finally:
        k.close()


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def sleep(self, s: float) -> None:
        self.t += s

    def clock(self) -> float:
        return self.t


def adapter(kube: KubeStandIn, timeout_s: float = 60.0) -> tuple[GpuOperatorMig, FakeTime]:
    ft = FakeTime()
    return GpuOperatorMig(KubeApi(kube.url), "gpu-node-1", GPU, timeout_s=timeout_s, poll_s=5.0,
                          sleep=ft.sleep, clock=ft.clock), ft


def test_node_config_groups_gpus_by_layout() -> None:
    name, entries = node_config({0: cfg("7g:b7"), 1: cfg("4g:b7,3g:b5"), 2: cfg("3g:b1,4g:b3")}, GPU)
    assert name.startswith("clover-") and len(name) == 17
    assert entries == [
        {"devices": [0], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}},
        {"devices": [1, 2], "mig-enabled": True, "mig-devices": {"4g.20gb": 1, "3g.20gb": 1}},
    ]
    assert node_config({1: cfg("4g:b7,3g:b5"), 0: cfg("7g:b1"), 2: cfg("4g:b1,3g:b1")}, GPU)[0] == name  # layouts only


def test_apply_labels_node_and_waits_for_success(kube: KubeStandIn) -> None:
    mig, ft = adapter(kube)
    name = mig.apply({0: cfg("7g:b7"), 1: cfg("4g:b7,3g:b5")})
    assert kube.labels[CONFIG_LABEL] == name and kube.labels[STATE_LABEL] == "success"
    assert kube.applied == [(name, [{"devices": [0], "mig-enabled": True, "mig-devices": {"7g.40gb": 1}},
                                    {"devices": [1], "mig-enabled": True,
                                     "mig-devices": {"4g.20gb": 1, "3g.20gb": 1}}])]
    assert ft.t == 5.0  # one poll interval
    patches = [b for m, _, b in kube.log if m == "PATCH"]
    assert patches == [{"metadata": {"labels": {CONFIG_LABEL: name, STATE_LABEL: "pending"}}}]
    # the same layout again: nothing is patched (idempotent)
    n = len(kube.log)
    assert mig.apply({0: cfg("7g:b1"), 1: cfg("3g:b1,4g:b1")}) == name
    assert [m for m, _, _ in kube.log[n:]] == ["GET"]
    # a second layout keeps the first config in the map (a rollback target)
    other = mig.apply({0: cfg("4g:b7,3g:b5"), 1: cfg("4g:b7,3g:b5")})
    configs = yaml.safe_load(kube.config_maps["clover-mig-parted-config"]["data"]["config.yaml"])["mig-configs"]
    assert set(configs) == {name, other} and kube.labels[CONFIG_LABEL] == other


def test_failed_restores_previous_label(kube: KubeStandIn) -> None:
    mig, _ = adapter(kube)
    first = mig.apply({0: cfg("7g:b7")})
    kube.mode = "failed"
    with pytest.raises(BackendError, match=rf"node gpu-node-1: MIG config clover-\w+: the MIG manager reported "
                                           rf"failed; label restored to {first}$"):
        mig.apply({0: cfg("4g:b7,3g:b5")})
    assert kube.labels[CONFIG_LABEL] == first and STATE_LABEL not in kube.labels


def test_timeout_is_a_clean_error_and_no_label_change(kube: KubeStandIn) -> None:
    kube.mode = "hang"
    mig, ft = adapter(kube, timeout_s=60.0)
    with pytest.raises(BackendError, match=r"no success within 60 s \(state pending\); label removed"):
        mig.apply({0: cfg("7g:b7")})
    assert ft.t == 60.0
    assert CONFIG_LABEL not in kube.labels and STATE_LABEL not in kube.labels
    assert kube.labels == {"kubernetes.io/hostname": "gpu-node-1"}


def test_api_errors_are_one_line(kube: KubeStandIn) -> None:
    kube.fail_patch = (403, "Forbidden")
    mig, _ = adapter(kube)
    with pytest.raises(BackendError, match=r"PATCH /api/v1/nodes/gpu-node-1: HTTP 403: nodes \"gpu-node-1\" is "
                                           r"forbidden"):
        mig.apply({0: cfg("7g:b7")})
    missing = GpuOperatorMig(KubeApi(kube.url), "no-such-node", GPU)
    with pytest.raises(BackendError, match="HTTP 404: nodes \"no-such-node\" not found"):
        missing.apply({0: cfg("7g:b7")})
    down = GpuOperatorMig(KubeApi("http://127.0.0.1:9", timeout_s=1.0), "gpu-node-1", GPU)
    with pytest.raises(BackendError, match="Kubernetes API GET /api/v1/nodes/gpu-node-1: ConnectError"):
        down.apply({0: cfg("7g:b7")})


@pytest.mark.parametrize(("text", "error"), [
    ("mig-configs: [unclosed", r"config.yaml: not valid YAML \(while parsing a flow sequence\)"),
    ("- a list", r"config.yaml: expected a mapping at the top level"),
    ("version: v1\nmig-configs:\n  all-1g: 7\n",
     r"config.yaml: field mig-configs.all-1g: Input should be a valid list \(got 7\)"),
])
def test_malformed_config_map_is_one_line_error_and_left_alone(kube: KubeStandIn, text: str, error: str) -> None:
    kube.config_maps["clover-mig-parted-config"] = {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"config.yaml": text, "other": "kept"},
        "metadata": {"name": "clover-mig-parted-config", "namespace": "gpu-operator", "resourceVersion": "1"}}
    mig, _ = adapter(kube)
    with pytest.raises(ConfigError, match=r"^config map gpu-operator/clover-mig-parted-config " + error + "$"):
        mig.apply({0: cfg("7g:b7")})
    assert kube.config_maps["clover-mig-parted-config"]["data"] == {"config.yaml": text, "other": "kept"}
    assert [m for m, _, _ in kube.log if m != "GET"] == []  # neither the map nor the node label was written


def test_config_map_keeps_other_configs(kube: KubeStandIn) -> None:
    theirs = {"all-disabled": [{"devices": "all", "mig-enabled": False}]}
    kube.config_maps["clover-mig-parted-config"] = {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"config.yaml": yaml.safe_dump(
            {"version": "v1", "mig-configs": theirs})},
        "metadata": {"name": "clover-mig-parted-config", "namespace": "gpu-operator", "resourceVersion": "1"}}
    mig, _ = adapter(kube)
    name = mig.apply({0: cfg("7g:b7")})
    configs = yaml.safe_load(kube.config_maps["clover-mig-parted-config"]["data"]["config.yaml"])["mig-configs"]
    assert configs["all-disabled"] == theirs["all-disabled"] and set(configs) == {"all-disabled", name}


def test_node_agent_with_the_operator_backend(kube: KubeStandIn) -> None:
    """``deploy --ray --mig-backend gpu-operator``: the node agent changes a GPU's layout through the
    operator (the node's whole layout in one config, other GPUs kept) and finds the slices' MIG
    UUIDs read-only through NVML -- here a simulated NVML that the stand-in manager partitions
    the way mig-parted would from the config it was given."""
    from clover_rl.mig.manager import MigManager
    from clover_rl.mig.partition import place
    from clover_rl.serving.ray.actors import NodeAgent
    from tests.support.fake_nvml import FakeNvml, a100_40gb

    nvml = FakeNvml([a100_40gb(), a100_40gb()])

    def manager(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            profiles = [p for p, n in e["mig-devices"].items() for _ in range(n)]
            for dev in e["devices"]:
                with MigManager(dev, nvml, GPU) as m:
                    m.apply(place(GPU, profiles))

    kube.on_success = manager
    agent = NodeAgent("cuda", GPU.name, 2, True, nvml, mig_backend="gpu-operator",
                      operator={"api_url": kube.url, "node": "gpu-node-1", "poll_s": 0.01})
    assert agent.make_before_break() is False  # the manager stops the node's GPU clients
    split = cfg("4g:b7,3g:b5").partition(GPU)
    devices = agent.realize(1, split)
    assert set(devices) == set(split.slices) and all(d.startswith("cuda:MIG-") for d in devices.values())
    assert kube.labels[STATE_LABEL] == "success" and [e["devices"] for e in kube.applied[-1][1]] == [[1]]
    whole = cfg("7g:b7").partition(GPU)
    agent.realize(0, whole)  # GPU 1 keeps its layout in the node's new config
    assert sorted(e["devices"] for e in kube.applied[-1][1]) == [[0], [1]]
    assert agent.layouts == {1: ("4g.20gb@0", "3g.20gb@4"), 0: ("7g.40gb@0",)}
    kube.mode = "failed"
    with pytest.raises(BackendError, match="MIG manager reported failed"):
        agent.realize(0, split)
    assert agent.placement.layouts[0] == whole  # the agent still holds the applied layout


def test_match_slices_follows_the_managers_placements() -> None:
    from clover_rl.mig.gpu_operator import match_slices
    from clover_rl.mig.partition import Partition, Slice

    wanted = cfg("4g:b7,2g:b5,1g:b1").partition(GPU)
    actual = Partition(GPU.name, (Slice(0, "1g.5gb", 1), Slice(2, "2g.10gb", 2), Slice(4, "4g.20gb", 4)))
    got = match_slices(wanted, actual, {s: f"MIG-{s.start}" for s in actual.slices})
    assert {s.profile: u for s, u in got.items()} == {"4g.20gb": "MIG-4", "2g.10gb": "MIG-2", "1g.5gb": "MIG-0"}
    with pytest.raises(BackendError, match="expected"):
        match_slices(wanted, cfg("7g:b7").partition(GPU), {})


def test_mig_backend_flag_needs_ray(capsys: pytest.CaptureFixture) -> None:
    from clover_rl.cli import main

    rc = main(["deploy", "--scenario", "efficientnet", "--policy", "base", "--carbon", "file:caiso_pge:eval",
               "--mig-backend", "gpu-operator"])
    assert rc == 2 and "--mig-backend gpu-operator: only with --ray" in capsys.readouterr().err
