"""Find a pod's container on this node the way crictl does, and its cgroup v2 id.

1. Ask the node's CRI runtime (containerd or CRI-O) over gRPC on its unix socket:
   `runtime.v1.RuntimeService/ListContainers` filtered by the kubelet's pod labels, then
   `ContainerStatus` (verbose) for the container's pid and OCI cgroupsPath, and
   `ListPodSandbox` only when the container carries no pod uid label.
2. Resolve its cgroup v2 directory: from /proc/<pid>/cgroup, else from the OCI
   cgroupsPath, else by trying the kubelet's layouts (systemd and cgroupfs drivers, each
   QoS class). The directory's inode number is the cgroup id that
   bpf_get_current_cgroup_id() reports for the container's tasks.

The few CRI messages needed are encoded by hand (protobuf wire format, field numbers
from k8s.io/cri-api pkg/apis/runtime/v1/api.proto): no generated code, no protoc.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tracer.cgroups import cgroup_id, cgroup_of_pid, cgroup_v2_root
from tracer.errors import InputError

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

QOS_CLASSES = ("guaranteed", "burstable", "besteffort")
# Scope prefixes per runtime under the systemd cgroup driver; cgroupfs uses the bare id.
SYSTEMD_SCOPE_PREFIXES = ("cri-containerd", "crio", "docker")


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
    state: int
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
        state=message.varint(6),
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


# --- protobuf wire format (proto3: varint = 0, length-delimited = 2) ---

def encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 go out as ten bytes, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def encode_bytes(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def encode_string(number: int, text: str) -> bytes:
    return encode_bytes(number, text.encode())


encode_message = encode_bytes


def encode_map(number: int, entries: dict[str, str]) -> bytes:
    """map<string, string>: one length-delimited {key = 1, value = 2} entry per item."""
    return b"".join(encode_message(number, encode_string(1, key) + encode_string(2, value))
                    for key, value in sorted(entries.items()))


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


class Fields:
    """A decoded message: field number -> list of raw values (int or bytes), in order."""

    def __init__(self, data: bytes):
        self.values: dict[int, list] = {}
        pos = 0
        while pos < len(data):
            key, pos = decode_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                value, pos = decode_varint(data, pos)
            elif wire_type == 2:
                length, pos = decode_varint(data, pos)
                value, pos = data[pos:pos + length], pos + length
                if pos > len(data):
                    raise ValueError("truncated length-delimited field")
            elif wire_type in (1, 5):  # fixed64 / fixed32: none we read, skip them
                size = 8 if wire_type == 1 else 4
                value, pos = data[pos:pos + size], pos + size
            else:
                raise ValueError(f"unsupported wire type {wire_type}")
            self.values.setdefault(number, []).append(value)

    def varint(self, number: int) -> int:
        values = self.values.get(number)
        return values[-1] if values else 0

    def string(self, number: int) -> str:
        values = self.values.get(number)
        return values[-1].decode() if values else ""

    def message(self, number: int) -> Fields | None:
        values = self.values.get(number)
        return Fields(values[-1]) if values else None

    def messages(self, number: int) -> list[Fields]:
        return [Fields(value) for value in self.values.get(number, [])]

    def map(self, number: int) -> dict[str, str]:
        return {entry.string(1): entry.string(2) for entry in self.messages(number)}


# --- cgroup v2 ---

def find_container_cgroup(pod_uid: str, container_id: str, *, pid: int | None = None,
                          cgroups_path: str | None = None, root: Path | None = None) -> Path:
    """The container's cgroup v2 directory; InputError naming what was tried if none exists.

    `root` is where the kubelet layouts are looked up: the cgroup2 mount by default.
    """
    root = root or cgroup_v2_root()
    tried = []
    if pid:
        from_proc = cgroup_of_pid(pid)
        if from_proc is not None and from_proc.is_dir():
            return from_proc
        tried.append(f"/proc/{pid}/cgroup")
    candidates = ([relative_from_cgroups_path(cgroups_path)] if cgroups_path else [])
    candidates += kubepods_layouts(pod_uid, container_id)
    for relative in candidates:
        if (root / relative).is_dir():
            return root / relative
    tried.append(f"{len(candidates)} kubelet cgroup layouts under {root}")
    raise InputError(None, f"no cgroup v2 directory found for container {container_id[:13]} of pod "
                           f"{pod_uid} (tried {', '.join(tried)})")


def relative_from_cgroups_path(cgroups_path: str) -> str:
    """The OCI linux.cgroupsPath as a path under the cgroup2 root.

    systemd driver: "kubepods-burstable-pod<uid>.slice:cri-containerd:<id>"
    cgroupfs driver: "/kubepods/burstable/pod<uid>/<id>"
    """
    parts = cgroups_path.split(":")
    if len(parts) == 3 and not cgroups_path.startswith("/"):
        slice_name, prefix, name = parts
        unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
        return f"{expand_slice(slice_name)}/{unit}".lstrip("/")
    return cgroups_path.lstrip("/")


def expand_slice(slice_name: str) -> str:
    """systemd nests slices by their dashes: a-b-c.slice is a.slice/a-b.slice/a-b-c.slice."""
    if not slice_name or slice_name == "-.slice":
        return ""
    stem = slice_name.removesuffix(".slice")
    words = stem.split("-")
    return "/".join("-".join(words[:n]) + ".slice" for n in range(1, len(words) + 1))


def kubepods_layouts(pod_uid: str, container_id: str) -> list[str]:
    """Every place the kubelet may put the container's cgroup, relative to the cgroup2 root."""
    layouts = []
    systemd_uid = pod_uid.replace("-", "_")
    for qos in QOS_CLASSES:
        # guaranteed pods sit directly under kubepods, the other classes under their own level
        slice_name = f"kubepods-pod{systemd_uid}.slice" if qos == "guaranteed" \
            else f"kubepods-{qos}-pod{systemd_uid}.slice"
        for prefix in SYSTEMD_SCOPE_PREFIXES:
            layouts.append(f"{expand_slice(slice_name)}/{prefix}-{container_id}.scope")
        level = "kubepods" if qos == "guaranteed" else f"kubepods/{qos}"
        layouts.append(f"{level}/pod{pod_uid}/{container_id}")
    return layouts
