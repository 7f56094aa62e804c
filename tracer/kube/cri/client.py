"""The node's CRI runtime (containerd, CRI-O) over gRPC on its unix socket, as the kubelet
and crictl talk to it, and the lookup of a pod's container and its cgroup v2 id.

Messages are upstream's: `runtime.v1` from k8s.io/cri-api's api.proto, compiled to
`runtime/v1/api_pb2.py` (see runtime/v1/README.md). Methods are called by their gRPC path.

Finding a pod's container (`resolve_pod_container`), as `crictl ps --namespace NS --pod POD`:
1. `ListContainers` filtered by the kubelet's pod labels, running only, then `ContainerStatus`
   (verbose) for the container's pid and OCI cgroupsPath, and `ListPodSandbox` only when the
   container carries no pod uid label;
2. its cgroup v2 directory (`cgroup_path`), whose inode number is the cgroup id that
   bpf_get_current_cgroup_id() reports for the container's tasks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tracer.cgroups import cgroup_id
from tracer.errors import InputError, MachineError, TracerError
from tracer.kube.cri.cgroup_path import find_container_cgroup
from tracer.kube.cri.runtime.v1 import api_pb2 as api

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

CONTAINER_RUNNING = api.CONTAINER_RUNNING


@dataclass(frozen=True)
class ResolvedContainer:
    container_id: str
    pod_uid: str
    cgroup_path: Path
    cgroup_id: int


def resolve_pod_container(
    namespace: str, pod: str, container: str | None = None, *, cri_endpoint: str | None = None
) -> ResolvedContainer:
    """The running container of pod NAMESPACE/POD (named CONTAINER when the pod has several).

    POD "*" stands for the one pod of NAMESPACE on this node that runs such a container.
    """
    with CriClient(cri_endpoint_for(cri_endpoint)) as client:
        found = _pick_container(client, namespace, pod, container)
        pod_uid = found.labels.get(LABEL_POD_UID) or client.pod_sandbox_uid(found.pod_sandbox_id)
        status = client.container_status(found.id)
    path = find_container_cgroup(pod_uid, found.id, pid=status.pid, cgroups_path=status.cgroups_path)
    return ResolvedContainer(found.id, pod_uid, path, cgroup_id(path))


def _pick_container(client: CriClient, namespace: str, pod: str, container: str | None) -> api.Container:
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
        raise InputError(client.endpoint, f"{where} matches several pods on this node ({', '.join(pods)}): name one")
    names = sorted({c.metadata.name for c in running})
    if len(names) > 1:
        raise InputError(
            client.endpoint,
            f"pod {namespace}/{pods[0]} runs several containers ({', '.join(names)}): choose one with --container",
        )
    return max(running, key=lambda c: c.created_at)  # the latest restart


def cri_endpoint_for(explicit: str | None = None) -> str:
    """The flag, else $CONTAINER_RUNTIME_ENDPOINT, else the first default socket present."""
    chosen = explicit or os.environ.get(CRI_ENDPOINT_ENV)
    if chosen:
        return chosen if "://" in chosen else f"unix://{chosen}"
    for endpoint in DEFAULT_CRI_ENDPOINTS:
        if Path(endpoint.removeprefix("unix://")).exists():
            return endpoint
    raise InputError(
        None,
        f"no CRI socket found (tried {', '.join(DEFAULT_CRI_ENDPOINTS)}); set --cri-endpoint or ${CRI_ENDPOINT_ENV}",
    )


# --- the CRI client ---


class CriError(TracerError):
    """A CRI call that failed; `code` is the gRPC status name. Raised as one of the two below."""

    def __init__(self, endpoint: str, method: str, code: str, details: str):
        super().__init__(endpoint, f"CRI {method} failed: {code}: {details}")
        self.method, self.code = method, code

    @staticmethod
    def of(endpoint: str, method: str, code: str, details: str) -> CriError:
        kind = CriUnavailable if code in CriUnavailable.CODES else CriRefused
        return kind(endpoint, method, code, details)


class CriRefused(CriError, InputError):
    """The runtime answered and refused the call (NOT_FOUND, INVALID_ARGUMENT...): the request's problem, exit 2."""


class CriUnavailable(CriError, MachineError):
    """No runtime answers behind the socket (down, restarting, too slow): the node's problem, exit 3."""

    CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED")


@dataclass(frozen=True)
class CriContainerStatus:
    """ContainerStatus, with what only the verbose info tells: the pid, the OCI cgroupsPath and
    the process's effective capabilities (None where the runtime does not say)."""

    status: api.ContainerStatus
    pid: int | None
    cgroups_path: str | None
    effective_capabilities: tuple[str, ...] | None = None


class CriClient:
    """One channel to a CRI runtime; each method is one CRI call, named as in api.proto."""

    RUNTIME_SERVICE = "/runtime.v1.RuntimeService/"
    IMAGE_SERVICE = "/runtime.v1.ImageService/"

    def __init__(self, endpoint: str, timeout_s: float = CRI_TIMEOUT_S):
        import grpc  # noqa: PLC0415 (only the Kubernetes path needs grpc)

        self._grpc = grpc
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(endpoint)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def version(self) -> api.VersionResponse:
        return self._runtime("Version", api.VersionRequest(), api.VersionResponse)

    def status(self) -> api.RuntimeStatus:
        """The runtime's conditions: RuntimeReady, NetworkReady (false until CNI is set up)."""
        return self._runtime("Status", api.StatusRequest(), api.StatusResponse).status

    # pod sandboxes

    def run_pod_sandbox(self, config: api.PodSandboxConfig, runtime_handler: str = "") -> str:
        request = api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        return self._runtime("RunPodSandbox", request, api.RunPodSandboxResponse).pod_sandbox_id

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._runtime(
            "StopPodSandbox", api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), api.StopPodSandboxResponse
        )

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._runtime(
            "RemovePodSandbox", api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), api.RemovePodSandboxResponse
        )

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> api.PodSandboxStatusResponse:
        request = api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        return self._runtime("PodSandboxStatus", request, api.PodSandboxStatusResponse)

    def list_pod_sandbox(self, labels: dict[str, str] | None = None, sandbox_id: str = "") -> list[api.PodSandbox]:
        sandbox_filter = api.PodSandboxFilter(id=sandbox_id, label_selector=labels or {})
        reply = self._runtime(
            "ListPodSandbox", api.ListPodSandboxRequest(filter=sandbox_filter), api.ListPodSandboxResponse
        )
        return list(reply.items)

    def pod_sandbox_uid(self, sandbox_id: str) -> str:
        for sandbox in self.list_pod_sandbox(sandbox_id=sandbox_id):
            if sandbox.metadata.uid:
                return sandbox.metadata.uid
        raise InputError(self.endpoint, f"pod sandbox {sandbox_id} not found or has no uid")

    # containers

    def create_container(
        self, sandbox_id: str, config: api.ContainerConfig, sandbox_config: api.PodSandboxConfig
    ) -> str:
        request = api.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        return self._runtime("CreateContainer", request, api.CreateContainerResponse).container_id

    def start_container(self, container_id: str) -> None:
        self._runtime(
            "StartContainer", api.StartContainerRequest(container_id=container_id), api.StartContainerResponse
        )

    def stop_container(self, container_id: str, timeout_s: int = 0) -> None:
        """Stop signal, then SIGKILL after `timeout_s` (0: at once), as the kubelet's grace period."""
        request = api.StopContainerRequest(container_id=container_id, timeout=timeout_s)
        self._runtime("StopContainer", request, api.StopContainerResponse, timeout_s=self.timeout_s + timeout_s)

    def remove_container(self, container_id: str) -> None:
        self._runtime(
            "RemoveContainer", api.RemoveContainerRequest(container_id=container_id), api.RemoveContainerResponse
        )

    def list_containers(
        self, labels: dict[str, str] | None = None, *, running_only: bool = False, sandbox_id: str = ""
    ) -> list[api.Container]:
        container_filter = api.ContainerFilter(label_selector=labels or {}, pod_sandbox_id=sandbox_id)
        if running_only:
            container_filter.state.state = CONTAINER_RUNNING
        reply = self._runtime(
            "ListContainers", api.ListContainersRequest(filter=container_filter), api.ListContainersResponse
        )
        return list(reply.containers)

    def container_status(self, container_id: str) -> CriContainerStatus:
        request = api.ContainerStatusRequest(container_id=container_id, verbose=True)
        reply = self._runtime("ContainerStatus", request, api.ContainerStatusResponse)
        pid, cgroups_path = _pid_and_cgroups_path(reply.info)
        return CriContainerStatus(reply.status, pid, cgroups_path, _effective_capabilities(reply.info))

    # images

    def image_status(self, image: str) -> api.Image | None:
        """The image named `image` (name, name@digest or id), None when the runtime has none."""
        request = api.ImageStatusRequest(image=api.ImageSpec(image=image))
        reply = self._image("ImageStatus", request, api.ImageStatusResponse)
        return reply.image if reply.HasField("image") else None

    def list_images(self) -> list[api.Image]:
        return list(self._image("ListImages", api.ListImagesRequest(), api.ListImagesResponse).images)

    # transport

    def _runtime(self, method: str, request, response_type, timeout_s: float | None = None):
        return self._call(self.RUNTIME_SERVICE, method, request, response_type, timeout_s)

    def _image(self, method: str, request, response_type):
        return self._call(self.IMAGE_SERVICE, method, request, response_type, None)

    def _call(self, service: str, method: str, request, response_type, timeout_s: float | None):
        call = self._channel.unary_unary(
            service + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            return call(request, timeout=timeout_s or self.timeout_s)
        except self._grpc.RpcError as err:
            raise CriError.of(self.endpoint, method, err.code().name, err.details()) from None


def _pid_and_cgroups_path(info) -> tuple[int | None, str | None]:
    """containerd and CRI-O put a JSON document under info["info"] in verbose mode."""
    try:
        details = json.loads(info.get("info") or "{}")
    except ValueError:
        details = {}
    pid = details.get("pid")
    spec = details.get("runtimeSpec") or {}
    cgroups_path = (spec.get("linux") or {}).get("cgroupsPath")
    return (pid if isinstance(pid, int) and pid > 0 else None), (cgroups_path or None)


def _effective_capabilities(info) -> tuple[str, ...] | None:
    """runtimeSpec.process.capabilities.effective from the verbose info, if the runtime gives it."""
    try:
        details = json.loads(info.get("info") or "{}")
    except ValueError:
        return None
    process = (details.get("runtimeSpec") or {}).get("process") or {}
    capabilities = process.get("capabilities")
    if not isinstance(capabilities, dict):
        return None
    effective = capabilities.get("effective") or []
    return tuple(sorted(cap for cap in effective if isinstance(cap, str)))
