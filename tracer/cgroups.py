"""cgroup v2: where it is mounted, ids, and cgroups the tracer makes for targets it owns.

The BPF program selects its target by cgroup v2 id, which is the inode number of the
cgroup's directory (what bpf_get_current_cgroup_id() returns). This works on pure v2 hosts
and on hybrid hosts (v1 controllers plus a v2 hierarchy, e.g. /sys/fs/cgroup/unified), where
runc and the kubelet place every container in the v2 hierarchy too.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from pathlib import Path

TRACER_PARENT = "seccomp-tracer"


class CgroupError(RuntimeError):
    pass


@functools.cache
def cgroup_v2_root() -> Path:
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return Path(left.split()[4])
    raise CgroupError("no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")


def cgroup_id(path: str | os.PathLike) -> int:
    return os.stat(path).st_ino


def cgroup_of_pid(pid: int) -> Path:
    """The absolute path of `pid`'s cgroup in the v2 hierarchy."""
    try:
        with open(f"/proc/{pid}/cgroup") as lines:
            for line in lines:
                hierarchy, _, rest = line.rstrip("\n").partition(":")
                controllers, _, relative = rest.partition(":")
                if hierarchy == "0" and controllers == "":
                    return cgroup_v2_root() / relative.lstrip("/")
    except FileNotFoundError:
        raise CgroupError(f"no process {pid}") from None
    raise CgroupError(f"process {pid} is in no cgroup v2")


def resolve_cgroup_path(path: str) -> Path:
    """A cgroup given as absolute path or relative to the v2 root."""
    candidate = Path(path)
    if not candidate.is_absolute() or not candidate.is_relative_to(cgroup_v2_root()):
        candidate = cgroup_v2_root() / path.lstrip("/")
    if not (candidate / "cgroup.procs").is_file():
        raise CgroupError(f"{path}: not a cgroup v2 directory (looked at {candidate})")
    return candidate


def cgroup_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def make_cgroup(label: str) -> Path:
    """A fresh cgroup below <v2 root>/seccomp-tracer/ for a target the tracer starts."""
    parent = cgroup_v2_root() / TRACER_PARENT
    parent.mkdir(exist_ok=True)
    path = parent / f"{label}-{os.getpid()}-{secrets.token_hex(3)}"
    path.mkdir()
    return path


def remove_cgroup(path: Path, timeout: float = 5.0) -> bool:
    """rmdir once the last process has left; False if it still holds processes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
