"""A real CRI node for live tests: a private containerd with its CRI plugin, our own pause and
mini-NIM images, and pods run on it as the kubelet runs them (tracer.embedded.crinode.node).

Its fixtures (`cri_node`, `k8s_namespace`) reach every test module through `pytest_plugins` in conftest.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from support.live import require_commands
from support.waiting import wait_for
from tracer.embedded.crinode.node import CriNode, Pod, cgroup_mount_points
from tracer.kube.cri.client import CriError
from tracer.kube.cri.runtime.v1 import api_pb2 as api

SLEEPER = ("/usr/bin/sleep", "infinity")  # a container that only waits, from the host's /usr


@pytest.fixture(scope="module")
def cri_node(live) -> CriNode:
    """One private containerd (CRI plugin, cgroupfs driver) per test module, closed at its end."""
    require_commands("containerd", "ctr", "runc", "gcc")
    with CriNode() as node:
        yield node


@pytest.fixture
def k8s_namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:8]}"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def wait_exited(pod: Pod, name: str, timeout_s: float = 30) -> api.ContainerStatus:
    def exited():
        status = pod.container_status(name).status
        return status if status.state == api.CONTAINER_EXITED else None

    return wait_for(exited, timeout_s, f"container {name} of pod {pod.name} to exit")


def container_log(pod: Pod, name: str) -> str:
    """The container's CRI log (one line per write: time, stream, tag, text)."""
    return "".join(path.read_text() for path in sorted((pod.log_directory / name).glob("*.log")))


def sandbox_pid(pod: Pod) -> int:
    info = json.loads(pod.client.pod_sandbox_status(pod.sandbox_id, verbose=True).info["info"])
    return info["pid"]


def pod_footprint(node: CriNode, pod: Pod) -> dict[str, list[str]]:
    """What a pod holds on the node, found without asking the runtime: processes, cgroups,
    mounts, runc state, shims, directories. Every list is empty once the pod is gone."""
    ids = [pod.sandbox_id, *pod.exited, *pod.containers.values()]
    cgroups = [str(point / pod.cgroup_parent.lstrip("/")) for point in cgroup_mount_points()]
    return {
        "cgroups": [path for path in cgroups if Path(path).exists()],
        "mounts": [
            line
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if any(i in line for i in ids) or str(pod.pod_directory) in line
        ],
        "runc state": [str(p) for p in (node.containerd.base / "state" / "runc" / "k8s.io").glob("*") if p.name in ids],
        "processes": [
            f"{pid}: {cmdline}"
            for pid, cmdline in processes().items()
            if pid in pids_in_cgroups(cgroups) or pod.sandbox_id in cmdline
        ],  # and the shim
        "directories": [str(d) for d in (pod.pod_directory, pod.log_directory) if d.exists()],
    }


def pids_in_cgroups(cgroups: list[str]) -> set[int]:
    pids = set()
    for cgroup in cgroups:
        for procs in Path(cgroup).rglob("cgroup.procs"):
            try:
                pids.update(int(pid) for pid in procs.read_text().split())
            except OSError:
                continue
    return pids


def processes() -> dict[int, str]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def runtime_knows(pod: Pod) -> list[str]:
    """What the runtime still reports of the pod: containers, the sandbox."""
    known = [
        f"container {c.id[:13]} ({api.ContainerState.Name(c.state)})"
        for c in pod.client.list_containers(sandbox_id=pod.sandbox_id)
    ]
    known += [f"sandbox {s.id[:13]}" for s in pod.client.list_pod_sandbox(sandbox_id=pod.sandbox_id)]
    for container_id in [*pod.exited, *pod.containers.values()]:
        try:
            pod.client.container_status(container_id)
            known.append(f"status of {container_id[:13]}")
        except CriError as err:
            if err.code != "NOT_FOUND":
                raise
    return known
