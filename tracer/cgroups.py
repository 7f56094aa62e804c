"""cgroup v2: where it is mounted, ids, and cgroups the tracer makes for targets it owns.

The BPF program selects its target by cgroup v2 id, which is the inode number of the
cgroup's directory (what bpf_get_current_cgroup_id() returns). This works on pure v2 hosts
and on hybrid hosts (v1 controllers plus a v2 hierarchy, e.g. /sys/fs/cgroup/unified), where
runc and the kubelet place every container in the v2 hierarchy too.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

from tracer.errors import InputError, MachineError

TRACER_PARENT = "seccomp-tracer"


class CgroupError(RuntimeError):
    pass


def cgroup_v2_root(mountinfo: str | Path = "/proc/self/mountinfo") -> Path:
    """Where cgroup2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts."""
    mount = _cgroup2_mount(mountinfo)
    if mount is None:
        raise InputError(mountinfo, "no cgroup2 file system is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
    return mount[0]


def _cgroup2_mount(mountinfo: str | Path) -> tuple[Path, str] | None:
    """(mount point, root of the hierarchy it shows) of the first cgroup2 mount."""
    for line in Path(mountinfo).read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            fields = before.split()
            return Path(_unescape(fields[4])), _unescape(fields[3])
    return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


def cgroup_id(path: str | Path) -> int:
    """The cgroup v2 id of a cgroup directory: its inode number in cgroupfs."""
    return os.stat(path).st_ino


def cgroup_of_pid(pid: int, mountinfo: str | Path = "/proc/self/mountinfo") -> Path | None:
    """The cgroup v2 directory of PID from its `0::` line, or None when it cannot be placed.

    /proc/<pid>/cgroup is relative to the reader's cgroup namespace, and so is the root
    of the hierarchy a mount shows; a path outside that root (in a container, "/../...")
    cannot be mapped onto the mount and is left to the other methods.
    """
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    unified = next((line[3:] for line in lines if line.startswith("0::")), None)
    mount = _cgroup2_mount(mountinfo)
    if unified is None or mount is None or "/.." in unified:
        return None
    mount_point, shown_root = mount[0], mount[1].rstrip("/")
    if not (unified + "/").startswith(shown_root + "/"):
        return None
    return mount_point / unified[len(shown_root) :].lstrip("/")


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


def new_cgroup_path(label: str) -> Path:
    """A fresh, unique cgroup path below <v2 root>/seccomp-tracer/ (not yet made): named
    after this process, so that what a run leaves can be told apart."""
    return cgroup_v2_root() / TRACER_PARENT / f"{label}-{os.getpid()}-{secrets.token_hex(3)}"


def make_cgroup(label: str | None = None, path: Path | None = None) -> Path:
    """Make the cgroup `path` (default: a new one for `label`) for a target the tracer starts."""
    path = path or new_cgroup_path(label or "target")
    try:
        path.parent.mkdir(exist_ok=True)
        path.mkdir()
    except OSError as err:
        raise MachineError(path, f"cannot create the cgroup: {err.strerror}") from None
    return path


def subtree_pids(path: Path) -> list[int]:
    """Every process in cgroup `path` and the cgroups below it."""
    pids = []
    for directory, _subdirs, _files in os.walk(path):
        pids += cgroup_pids(Path(directory))
    return pids


def kill_cgroup(path: Path, timeout: float = 10.0) -> bool:
    """SIGKILL every process in cgroup `path` and below, until none is left; True when empty.

    cgroup.kill (kernel 5.14+) kills the whole subtree atomically, forks included; without
    it, each pid in cgroup.procs is killed again until the cgroup stays empty."""
    deadline = time.monotonic() + timeout
    while subtree_pids(path):
        if not _write_cgroup_kill(path):
            for pid in subtree_pids(path):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def signal_cgroup(path: Path, signum: int) -> None:
    """Send `signum` to every process in cgroup `path` and below."""
    for pid in subtree_pids(path):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _write_cgroup_kill(path: Path) -> bool:
    try:
        (path / "cgroup.kill").write_text("1")
        return True
    except FileNotFoundError:
        return False
    except OSError:  # the cgroup went away meanwhile
        return (path / "cgroup.kill").exists()


def v1_counterparts(path: Path) -> list[Path]:
    """The same cgroup in each cgroup v1 hierarchy (runc makes them on hybrid hosts), where present."""
    relative = path.relative_to(cgroup_v2_root())
    return [mount / relative for mount in _v1_mounts().values() if (mount / relative).is_dir()]


def remove_everywhere(path: Path, timeout: float = 5.0) -> list[Path]:
    """Kill what runs in cgroup `path`, then remove it, the cgroups below it and its v1
    counterparts. Returns what could not be removed."""
    kill_cgroup(path)
    left = []
    for top in [path, *v1_counterparts(path)]:
        for directory in sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda d: len(d.parts), reverse=True):
            if not remove_cgroup(directory, timeout):
                left.append(directory)
    return left


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


def _v1_mounts(mountinfo: str | Path = "/proc/self/mountinfo") -> dict[frozenset, Path]:
    """{controllers (or name=...) of a cgroup v1 hierarchy: its mount point}."""
    mounts = {}
    for line in Path(mountinfo).read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields = after.split()
        if fields and fields[0] == "cgroup":
            options = set(fields[2].split(","))
            mounts[
                frozenset(
                    o for o in options if o not in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec")
                )
            ] = Path(_unescape(before.split()[4]))
    return mounts


def make_sub_cgroups(pid: int, name: str) -> list[Path]:
    """A child named `name` of `pid`'s cgroup in every hierarchy it is in (v2 and, on hybrid
    hosts, each v1 one), as `runc exec --cgroup NAME` needs. Returns them deepest-first."""
    made = []
    v1 = _v1_mounts()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0":
            parent = cgroup_of_pid(pid)
        else:
            wanted = frozenset(controllers.split(","))
            mount = next((m for opts, m in v1.items() if wanted <= opts), None)
            parent = mount / path.lstrip("/") if mount else None
        if parent is None or not parent.is_dir():
            continue
        child = parent / name
        child.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset child starts with none
            if (parent / knob).exists() and not (child / knob).read_text().strip():
                (child / knob).write_text((parent / knob).read_text())
        made.append(child)
    return made
