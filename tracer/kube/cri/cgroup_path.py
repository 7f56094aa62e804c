"""A Kubernetes container's cgroup v2 directory: from /proc/<pid>/cgroup, else from the OCI
cgroupsPath, else by trying the kubelet's layouts (systemd and cgroupfs drivers, each QoS class)."""

from __future__ import annotations

from pathlib import Path

from tracer.cgroups import cgroup_of_pid, cgroup_v2_root
from tracer.errors import InputError

QOS_CLASSES = ("guaranteed", "burstable", "besteffort")
SYSTEMD_SCOPE_PREFIXES = ("cri-containerd", "crio", "docker")


def find_container_cgroup(
    pod_uid: str,
    container_id: str,
    *,
    pid: int | None = None,
    cgroups_path: str | None = None,
    root: Path | None = None,
) -> Path:
    """The container's cgroup v2 directory; InputError naming what was tried if none exists.

    `root` is where the kubelet layouts are looked up: the cgroup2 mount by default.
    """
    root = root or cgroup_v2_root()
    tried = []
    if pid:
        # The runtime's pid is a host pid: without the host's PID namespace (a pod without
        # hostPID) it may name another process, whose cgroup does not carry the container id.
        from_proc = cgroup_of_pid(pid)
        if from_proc is not None and from_proc.is_dir() and container_id in from_proc.name:
            return from_proc
        tried.append(f"/proc/{pid}/cgroup")
    candidates = [relative_from_cgroups_path(cgroups_path)] if cgroups_path else []
    candidates += kubepods_layouts(pod_uid, container_id)
    for relative in candidates:
        if (root / relative).is_dir():
            return root / relative
    tried.append(f"{len(candidates)} kubelet cgroup layouts under {root}")
    raise InputError(
        None,
        f"no cgroup v2 directory found for container {container_id[:13]} of pod {pod_uid} (tried {', '.join(tried)})",
    )


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
        slice_name = (
            f"kubepods-pod{systemd_uid}.slice" if qos == "guaranteed" else f"kubepods-{qos}-pod{systemd_uid}.slice"
        )
        for prefix in SYSTEMD_SCOPE_PREFIXES:
            layouts.append(f"{expand_slice(slice_name)}/{prefix}-{container_id}.scope")
        level = "kubepods" if qos == "guaranteed" else f"kubepods/{qos}"
        layouts.append(f"{level}/pod{pod_uid}/{container_id}")
    return layouts
