"""MIG layouts through the NVIDIA GPU operator's MIG manager (Kubernetes), instead of NVML.

On Kubernetes with the GPU operator, MIG is owned by its ``nvidia-mig-manager`` daemonset: it
watches each node's label ``nvidia.com/mig.config``, applies the named entry of its mig-parted
config map to every GPU of the node (stopping the GPU clients on the node while it does), and
reports in the label ``nvidia.com/mig.config.state``: ``pending`` -> ``success`` | ``failed``
(``rebooting`` on some hosts). :class:`GpuOperatorMig` drives that protocol:

1. write the node's layout (one mig-parted entry per distinct per-GPU layout, ``devices: [i]``)
   under a content-named config (``clover-<hash>``) into a config map (default
   ``gpu-operator/clover-mig-parted-config``, key ``config.yaml``; other configs in it are kept,
   so the previous one stays valid for a rollback);
2. PATCH the node's labels: ``nvidia.com/mig.config=<name>`` and ``nvidia.com/mig.config.state=
   pending`` (so a ``success`` left by the previous change is never mistaken for this one's);
3. poll ``GET /api/v1/nodes/<node>`` every ``poll_s`` until the state is ``success`` (done),
   ``failed``, or ``timeout_s`` passes: then the label goes back to the previous config and
   :class:`~clover_rl.errors.BackendError` says what happened (one line).

Limits (also in ``docs/ray.md``): the unit is the whole node -- every GPU of it stops serving
while the manager works, so plan one node at a time; a change takes minutes (the manager drains
GPU pods, may restart them or the node); it can hang (a pod holding a GPU, a driver that needs a
reboot), which is why there is a timeout and a rollback of the label -- but the rollback is itself
a request to the same manager and may hang the same way. The cluster admin points the operator at
the config map once (``ClusterPolicy.spec.migManager.config.name``). Only the documented node and
config-map JSON is used (``httpx``; no Kubernetes client library).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from clover_rl.config_io import parse_model, parse_yaml_mapping
from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import GpuModel
from clover_rl.mig.config import Configuration
from clover_rl.mig.migparted import mig_parted_entry
from clover_rl.mig.partition import Partition, Slice

CONFIG_LABEL = "nvidia.com/mig.config"
STATE_LABEL = "nvidia.com/mig.config.state"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeApi:
    """The few Kubernetes API calls the adapter needs (JSON over HTTPS with a bearer token)."""

    def __init__(self, base_url: str, token: str | None = None, verify: bool | str = True,
                 timeout_s: float = 10.0, client: Any = None) -> None:
        import httpx

        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(base_url=self.base_url, headers=headers, verify=verify, timeout=timeout_s)

    @classmethod
    def in_cluster(cls) -> KubeApi:
        """From a pod: the service account token and CA, ``KUBERNETES_SERVICE_HOST/PORT``."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (SA_DIR / "token").exists():
            raise ConfigError("not inside a Kubernetes pod (no KUBERNETES_SERVICE_HOST or service account token)")
        return cls(f"https://{host}:{port}", (SA_DIR / "token").read_text().strip(), str(SA_DIR / "ca.crt"))

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
              missing_ok: bool = False) -> dict[str, Any] | None:
        import httpx

        try:
            r = self.client.request(method, path, content=None if body is None else json.dumps(body),
                                    headers={"Content-Type": content_type} if body is not None else None)
        except httpx.HTTPError as e:
            raise BackendError(f"Kubernetes API {method} {path}: {type(e).__name__}: {e}") from None
        if r.status_code == 404 and missing_ok:
            return None
        if r.status_code >= 400:
            try:  # a v1 Status object: {"kind": "Status", "message": ..., "reason": ..., "code": ...}
                msg = r.json().get("message") or r.text
            except ValueError:
                msg = r.text
            raise BackendError(f"Kubernetes API {method} {path}: HTTP {r.status_code}: {str(msg).strip()[:200]}")
        try:
            return r.json()
        except ValueError:
            raise BackendError(f"Kubernetes API {method} {path}: answer is not JSON") from None

    def node(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/nodes/{name}") or {}

    def label_node(self, name: str, labels: Mapping[str, str | None]) -> dict[str, Any]:
        """JSON merge patch of the node's labels (``None`` removes a label)."""
        return self._call("PATCH", f"/api/v1/nodes/{name}", {"metadata": {"labels": dict(labels)}},
                          "application/merge-patch+json") or {}

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}", missing_ok=True)

    def put_config_map(self, namespace: str, name: str, data: dict[str, str], existing: dict[str, Any] | None) -> None:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name, "namespace": namespace}, "data": data}
        if existing is None:
            self._call("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
        else:  # optimistic concurrency: the replace fails (409) if someone changed it meanwhile
            body["metadata"]["resourceVersion"] = existing.get("metadata", {}).get("resourceVersion")
            self._call("PUT", f"/api/v1/namespaces/{namespace}/configmaps/{name}", body)


def node_config(layouts: Mapping[int, Configuration], gpu: GpuModel) -> tuple[str, list[dict[str, Any]]]:
    """(content-named config, mig-parted entries) for a node whose GPU ``i`` holds ``layouts[i]``'s
    slices; GPUs with the same layout share one entry."""
    if not layouts:
        raise ConfigError("a node layout needs at least one GPU")
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, cfg in sorted(layouts.items()):
        groups.setdefault(tuple(sorted(cfg.profiles)), []).append(int(i))
    entries = [mig_parted_entry(layouts[idx[0]], gpu, idx, f"node layout GPU {idx[0]}") for idx in groups.values()]
    digest = hashlib.sha1(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:10]
    return f"clover-{digest}", entries


class MigPartedDoc(BaseModel):
    """The mig-parted document under the config map's ``config.yaml`` (NVIDIA mig-parted's
    ``version`` + ``mig-configs: {name: [entry, ...]}``): checked before the adapter adds its
    config, so a malformed map is a one-line ConfigError naming the map and field, never
    silently replaced."""

    model_config = ConfigDict(extra="allow")

    version: str = "v1"
    mig_configs: dict[str, list[dict[str, Any]]] | None = Field(None, alias="mig-configs")


class GpuOperatorMig:
    """Apply one node's MIG layout through the GPU operator (see the module docstring)."""

    def __init__(self, api: KubeApi, node: str, gpu: GpuModel, *, namespace: str = "gpu-operator",
                 config_map: str = "clover-mig-parted-config", timeout_s: float = 900.0, poll_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.node = node
        self.gpu = gpu
        self.namespace = namespace
        self.config_map_name = config_map
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._sleep = sleep
        self._clock = clock

    def labels(self) -> dict[str, str]:
        return dict(self.api.node(self.node).get("metadata", {}).get("labels") or {})

    def _publish(self, name: str, entries: list[dict[str, Any]]) -> None:
        cm = self.api.config_map(self.namespace, self.config_map_name)
        text = ((cm or {}).get("data") or {}).get("config.yaml") or ""
        where = f"config map {self.namespace}/{self.config_map_name} config.yaml"
        doc = parse_model(MigPartedDoc, parse_yaml_mapping(text, where, empty_ok=True), where)
        configs = dict(doc.mig_configs or {})
        if configs.get(name) == entries:
            return
        configs[name] = entries
        data = {**((cm or {}).get("data") or {}),
                "config.yaml": yaml.safe_dump({"version": "v1", "mig-configs": configs}, sort_keys=False)}
        self.api.put_config_map(self.namespace, self.config_map_name, data, cm)

    def apply(self, layouts: Mapping[int, Configuration]) -> str:
        """Make the node hold ``layouts`` (GPU index -> configuration); the config name applied.

        Idempotent: a node already labelled with this layout's config in state ``success`` is
        left alone. On ``failed`` or a time-out the label is restored to the previous config (or
        removed if there was none) and BackendError is raised.
        """
        name, entries = node_config(layouts, self.gpu)
        labels = self.labels()
        previous = labels.get(CONFIG_LABEL)
        if previous == name and labels.get(STATE_LABEL) == "success":
            return name
        self._publish(name, entries)
        self.api.label_node(self.node, {CONFIG_LABEL: name, STATE_LABEL: "pending"})
        t0 = self._clock()
        state = "pending"
        while True:
            state = self.labels().get(STATE_LABEL) or "unset"
            if state == "success":
                return name
            if state == "failed" or self._clock() - t0 >= self.timeout_s:
                break
            self._sleep(self.poll_s)
        why = ("the MIG manager reported failed" if state == "failed"
               else f"no success within {self.timeout_s:g} s (state {state})")
        self.api.label_node(self.node, {CONFIG_LABEL: previous, STATE_LABEL: None})
        back = f"label restored to {previous}" if previous else "label removed (there was none before)"
        raise BackendError(f"node {self.node}: MIG config {name}: {why}; {back}")


def _as_configuration(layout: Configuration | Partition, gpu: GpuModel) -> Configuration:
    """A layout as a Configuration for :func:`node_config` (its variants never reach mig-parted)."""
    if isinstance(layout, Configuration):
        return layout
    return Configuration.of(gpu, [(s.profile, "-") for s in layout.slices])


def match_slices(wanted: Partition, actual: Partition, uuids: Mapping[Slice, str]) -> dict[Slice, str]:
    """MIG UUID of each slice of ``wanted`` from the GPU's ``actual`` partition: the MIG manager
    (mig-parted) picks placements itself, so slices are matched by profile in start order;
    BackendError when the profiles differ (the layout is not what was asked for)."""
    if sorted(s.profile for s in wanted.slices) != sorted(s.profile for s in actual.slices):
        raise BackendError(f"GPU holds {', '.join(s.profile for s in actual.slices) or 'no MIG devices'} after the "
                           f"MIG manager's change; expected {', '.join(s.profile for s in wanted.slices)}")
    free: dict[str, list[Slice]] = {}
    for s in sorted(actual.slices, key=lambda x: x.start):
        free.setdefault(s.profile, []).append(s)
    return {s: uuids[free[s.profile].pop(0)] for s in sorted(wanted.slices, key=lambda x: x.start)}


class GpuOperatorPlacement:
    """The GPU operator as a node agent's MIG backend (``clover-rl deploy --ray ... --mig-backend
    gpu-operator``): a placement provider whose ``realize(gpu, partition)`` re-applies the node's
    whole layout (this GPU's new partition + the others' current ones) through
    :class:`GpuOperatorMig`, then reads the slices' MIG UUIDs read-only through NVML. Break-before-
    make: the manager stops the node's GPU clients while it works (see the module docstring)."""

    device_kind = "cuda"
    make_before_break = False

    def __init__(self, mig: GpuOperatorMig, nvml: Any = None) -> None:
        self.mig = mig
        self.nvml = nvml  # a stand-in NVML module (tests); None: pynvml
        self.layouts: dict[int, Partition] = {}

    def realize(self, gpu_index: int, partition: Partition) -> dict[Slice, str]:
        wanted = {**self.layouts, int(gpu_index): partition}
        self.mig.apply({g: _as_configuration(p, self.mig.gpu) for g, p in sorted(wanted.items())})
        self.layouts = wanted
        from clover_rl.mig.manager import MigManager

        with MigManager(int(gpu_index), self.nvml, self.mig.gpu) as m:
            actual = m.partition()
            mapping = match_slices(partition, actual, m.uuids(actual))
        return {s: f"cuda:{u}" for s, u in mapping.items()}

    def close(self) -> None:
        pass


def operator_placement(gpu: GpuModel, *, node: str | None = None, api_url: str | None = None,
                       nvml: Any = None, **options: Any) -> GpuOperatorPlacement:
    """The placement of a node agent on Kubernetes: node name ``node`` (default: ``NODE_NAME``, set
    from the downward API ``spec.nodeName``), the API at ``api_url`` (default: in-cluster), other
    :class:`GpuOperatorMig` options (namespace, config_map, timeout_s, poll_s)."""
    name = node or os.environ.get("NODE_NAME")
    if not name:
        raise ConfigError("--mig-backend gpu-operator: the node agent needs its Kubernetes node name in NODE_NAME "
                          "(env: valueFrom.fieldRef.fieldPath: spec.nodeName)")
    api = KubeApi(api_url) if api_url else KubeApi.in_cluster()
    return GpuOperatorPlacement(GpuOperatorMig(api, name, gpu, **options), nvml=nvml)
