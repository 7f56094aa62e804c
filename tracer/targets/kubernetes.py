"""Kubernetes pods (`--kubernetes-pod NS/POD`), found through the node's CRI socket."""

from __future__ import annotations

from tracer.errors import InputError
from tracer.targets.base import Target


def kubernetes_pod_target(pod: str, container: str | None = None, cri_endpoint: str | None = None) -> Target:
    """A pod's container on this node, found through the CRI socket (no API server)."""
    from tracer.kube.cri.client import resolve_pod_container  # noqa: PLC0415 (grpc only when asked for)

    namespace, slash, name = pod.partition("/")
    if not slash or not namespace or not name:
        raise InputError(pod, "expected NAMESPACE/POD")
    found = resolve_pod_container(namespace, name, container, cri_endpoint=cri_endpoint)
    # Attached to a container that already runs: its start-up is behind it.
    return Target(
        "kubernetes-pod",
        pod,
        found.cgroup_path,
        details={
            "container_id": found.container_id,
            "pod_uid": found.pod_uid,
            "pod": {"namespace": namespace, "name": name, "uid": found.pod_uid},
            "container": {"id": found.container_id, **({"name": container} if container else {})},
        },
        startup_missed=True,
    )
