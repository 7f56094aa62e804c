"""Kubernetes pods (`--kubernetes-pod NS/POD`), found through the node's CRI socket."""

from __future__ import annotations

from tracer.errors import InputError, MachineError
from tracer.targets.base import Target


def kubernetes_pod_target(pod: str, container: str | None = None, cri_endpoint: str | None = None) -> Target:
    """A pod's container on this node, found through the CRI socket (no API server)."""
    from tracer.kube.cri.client import CriError, resolve_pod_container  # noqa: PLC0415 (grpc only when asked for)

    namespace, slash, name = pod.partition("/")
    if not slash or not namespace or not name:
        raise InputError(pod, "expected NAMESPACE/POD")
    try:
        found = resolve_pod_container(namespace, name, container, cri_endpoint=cri_endpoint)
    except CriError as err:
        if err.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):  # no runtime behind the socket: the node's problem
            raise MachineError(err.source, err.problem) from None
        raise
    return Target("kubernetes-pod", pod, found.cgroup_path,
                  details={"container_id": found.container_id, "pod_uid": found.pod_uid,
                           "pod": {"namespace": namespace, "name": name, "uid": found.pod_uid},
                           "container": {"id": found.container_id, **({"name": container} if container else {})}})
