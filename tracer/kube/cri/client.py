"""Find a pod's container on this node the way crictl does, and its cgroup v2 id.

1. Ask the node's CRI runtime (containerd or CRI-O) over gRPC on its unix socket:
   `runtime.v1.RuntimeService/ListContainers` filtered by the kubelet's pod labels, then
   `ContainerStatus` (verbose) for the container's pid and OCI cgroupsPath, and
   `ListPodSandbox` only when the container carries no pod uid label.
2. Resolve its cgroup v2 directory (`cgroup_path`). The directory's inode number is the
   cgroup id that bpf_get_current_cgroup_id() reports for the container's tasks.

The few CRI messages needed are encoded by hand (`wire`: protobuf wire format, field numbers
from k8s.io/cri-api pkg/apis/runtime/v1/api.proto): no generated code, no protoc.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tracer.cgroups import cgroup_id
from tracer.errors import InputError
from tracer.kube.cri.cgroup_path import find_container_cgroup
from tracer.kube.cri.wire import Fields, encode_map, encode_message, encode_string, encode_varint_field

CRI_ENDPOINT_ENV = "CONTAINER_RUNTIME_ENDPOINT"  # the variable crictl reads too
DEFAULT_CRI_ENDPOINTS = (
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
)
CRI_TIMEOUT_S = 10.0

LABEL_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD = "io.kubernetes.pod.name"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER = "io.kubernetes.container.name"
ANY_POD = "*"  # any one pod of the namespace on this node (for DaemonSet-driven recording)

CONTAINER_RUNNING = 1  # runtime.v1.ContainerState

# Scope prefixes per runtime under the systemd cgroup driver; cgroupfs uses the bare id.


@dataclass(frozen=True)
class ResolvedContainer:
    container_id: str
    pod_uid: str
    cgroup_path: Path
    cgroup_id: int


def resolve_pod_container(namespace: str, pod: str, container: str | None = None, *,
                          cri_endpoint: str | None = None) -> ResolvedContainer:
    """The running container of pod NAMESPACE/POD (named CONTAINER when the pod has several).

    POD "*" stands for the one pod of NAMESPACE on this node that runs such a container.
    """
    client = CriClient(cri_endpoint_for(cri_endpoint))
    try:
        found = _pick_container(client, namespace, pod, container)
        pod_uid = found.labels.get(LABEL_POD_UID) or client.pod_sandbox_uid(found.pod_sandbox_id)
        status = client.container_status(found.id)
    finally:
        client.close()
    path = find_container_cgroup(pod_uid, found.id, pid=status.pid, cgroups_path=status.cgroups_path)
    return ResolvedContainer(found.id, pod_uid, path, cgroup_id(path))


def _pick_container(client: CriClient, namespace: str, pod: str, container: str | None):
    labels = {LABEL_NAMESPACE: namespace}
    if pod != ANY_POD:
        labels[LABEL_POD] = pod
    if container:
        labels[LABEL_CONTAINER] = container
    running = client.list_containers(labels, running_only=True)
    where = f"{namespace}/{pod}" + (f" container {container}" if container else "")
    if not running:
        raise InputError(client.endpoint, f"no running container for pod {where} on this node")
    pods = sorted({c.labels.get(LABEL_POD, "?") for c in running})
    if len(pods) > 1:
        raise InputError(client.endpoint, f"{where} matches several pods on this node "
                                          f"({', '.join(pods)}): name one")
    names = sorted({c.name for c in running})
    if len(names) > 1:
        raise InputError(client.endpoint, f"pod {namespace}/{pods[0]} runs several containers "
                                          f"({', '.join(names)}): choose one with --container")
    return max(running, key=lambda c: c.created_at)  # the latest restart


# --- the CRI client ---

@dataclass(frozen=True)
class CriContainer:
    id: str
    pod_sandbox_id: str
    name: str
    created_at: int
    labels: dict[str, str]


@dataclass(frozen=True)
class CriContainerStatus:
    pid: int | None
    cgroups_path: str | None


def cri_endpoint_for(explicit: str | None = None) -> str:
    """The flag, else $CONTAINER_RUNTIME_ENDPOINT, else the first default socket present."""
    chosen = explicit or os.environ.get(CRI_ENDPOINT_ENV)
    if chosen:
        return chosen if "://" in chosen else f"unix://{chosen}"
    for endpoint in DEFAULT_CRI_ENDPOINTS:
        if Path(endpoint.removeprefix("unix://")).exists():
            return endpoint
    raise InputError(None, "no CRI socket found (tried "
                           f"{', '.join(DEFAULT_CRI_ENDPOINTS)}); set --cri-endpoint or "
                           f"${CRI_ENDPOINT_ENV}")


class CriClient:
    SERVICE = "/runtime.v1.RuntimeService/"

    def __init__(self, endpoint: str):
        import grpc  # imported here: only the Kubernetes path needs it

        self._grpc = grpc
        self.endpoint = endpoint
        self._channel = grpc.insecure_channel(endpoint)

    def close(self) -> None:
        self._channel.close()

    def list_containers(self, labels: dict[str, str], *, running_only: bool) -> list[CriContainer]:
        container_filter = encode_map(4, labels)
        if running_only:
            container_filter += encode_message(2, encode_varint_field(1, CONTAINER_RUNNING))
        reply = self._call("ListContainers", encode_message(1, container_filter))
        return [_container(message) for message in Fields(reply).messages(1)]

    def container_status(self, container_id: str) -> CriContainerStatus:
        request = encode_string(1, container_id) + encode_varint_field(2, 1)  # verbose
        reply = Fields(self._call("ContainerStatus", request))
        return _status_from_info(reply.map(2))

    def pod_sandbox_uid(self, sandbox_id: str) -> str:
        request = encode_message(1, encode_string(1, sandbox_id))
        for item in Fields(self._call("ListPodSandbox", request)).messages(1):
            metadata = item.message(2)
            if metadata is not None and metadata.string(2):
                return metadata.string(2)
        raise InputError(self.endpoint, f"pod sandbox {sandbox_id} not found or has no uid")

    def _call(self, method: str, request: bytes) -> bytes:
        call = self._channel.unary_unary(self.SERVICE + method)
        try:
            return call(request, timeout=CRI_TIMEOUT_S)
        except self._grpc.RpcError as err:
            raise InputError(self.endpoint, f"CRI {method} failed: "
                                            f"{err.code().name}: {err.details()}") from None


def _container(message: Fields) -> CriContainer:
    metadata = message.message(3)
    return CriContainer(
        id=message.string(1),
        pod_sandbox_id=message.string(2),
        name=metadata.string(1) if metadata else "",
        created_at=message.varint(7),
        labels=message.map(8),
    )


def _status_from_info(info: dict[str, str]) -> CriContainerStatus:
    """containerd and CRI-O put a JSON document under info["info"] in verbose mode."""
    try:
        details = json.loads(info.get("info") or "{}")
    except ValueError:
        details = {}
    pid = details.get("pid")
    spec = details.get("runtimeSpec") or {}
    cgroups_path = (spec.get("linux") or {}).get("cgroupsPath")
    return CriContainerStatus(pid if isinstance(pid, int) and pid > 0 else None,
                              cgroups_path or None)
