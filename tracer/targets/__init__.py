"""Targets: turn "runc container X", "containerd task Y", "cgroup", "PID" or "a command" into
one cgroup v2 to watch, plus how to start it and tell when it is done when we own it.

`gated` targets are watched from before the workload's first exec, so the recorder keeps
the runtime's own set-up (phase "runtime") apart from the workload; targets that are
already running are counted from the moment we attach.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tracer import cgroups, runc
from tracer.errors import InputError


@dataclass
class Target:
    kind: str
    name: str
    cgroup_path: Path
    gated: bool = False
    details: dict = field(default_factory=dict)
    exit_status: int | None = None
    netns: str | None = None  # the named network namespace its ready URL and load live in

    @property
    def cgroup_id(self) -> int:
        return cgroups.cgroup_id(self.cgroup_path)

    def metadata(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "cgroup_path": "/" + str(self.cgroup_path.relative_to(cgroups.cgroup_v2_root())),
            "cgroup_id": self.cgroup_id,
            "gated": self.gated,
            **self.details,
        }

    def start(self) -> None:
        """Called once the recorder is attached."""

    def finished(self) -> bool:
        return not cgroups.cgroup_pids(self.cgroup_path)

    def stop(self) -> None:
        """Recording ends before the target did (duration, Ctrl-C)."""

    def close(self) -> None:
        """Release what the target made (cgroups, child processes)."""


# ---------------------------------------------------------------- -- COMMAND


@dataclass
class CommandTarget(Target):
    argv: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @classmethod
    def create(cls, argv: list[str]) -> "CommandTarget":
        if not argv:
            raise InputError(None, "no command given after --")
        if shutil.which(argv[0]) is None:
            raise InputError(argv[0], "command not found")
        path = cgroups.make_cgroup("cmd")
        return cls("command", " ".join(argv), path, gated=True, argv=list(argv))

    def start(self) -> None:
        procs = str(self.cgroup_path / "cgroup.procs")

        def join_cgroup() -> None:  # runs in the child between fork and exec
            with open(procs, "w") as handle:
                handle.write("0")

        self.process = subprocess.Popen(self.argv, preexec_fn=join_cgroup)

    def finished(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self.exit_status = _shell_status(self.process.returncode)
        return True

    def stop(self) -> None:
        _terminate(self.process)

    def close(self) -> None:
        _terminate(self.process)
        if self.process is not None:
            self.exit_status = _shell_status(self.process.returncode)
        cgroups.remove_cgroup(self.cgroup_path)


def _shell_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _terminate(process: subprocess.Popen | None, grace: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- --pid, --cgroup


@dataclass
class PidTarget(Target):
    pid: int = 0

    @classmethod
    def create(cls, pid: int) -> "PidTarget":
        path = cgroups.cgroup_of_pid(pid)
        if path is None:
            raise InputError(f"pid {pid}", "no such process, or it is in no cgroup v2 this host can see")
        return cls("pid", str(pid), path, pid=pid, details={"pid": pid})

    def finished(self) -> bool:
        return not process_alive(self.pid)


def cgroup_target(path: str) -> Target:
    try:
        resolved = cgroups.resolve_cgroup_path(path)
    except cgroups.CgroupError as err:
        raise InputError(path, str(err)) from None
    return Target("cgroup", path, resolved)


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# ---------------------------------------------------------------- --runc, --runc-bundle
#
# Where runc installs the seccomp filter decides which of its own syscalls the profile must
# allow. Measured with runc 1.1.5 (tests/test_runc_gate.py): with noNewPrivileges it installs
# the filter before it signals `runc create` that set-up is done; everything after that
# (reopening its exec fifo through /proc/self/fd: openat, write, close, getpid, fstatfs,
# getdents64, epoll_ctl, futex, then execve) runs under the filter. Without noNewPrivileges
# it installs it earlier still, before dropping privileges (capset, setgroups, setresuid...).
#
# So a container the user created is counted from the moment we attach (nothing after
# `runc create` is runc's private set-up), and a container we create ourselves is gated on
# the filter install itself: we record it under an allow-all "marker" filter when its config
# has none, so runc makes the seccomp() call exactly where the real profile will be loaded.

MARKER_SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW"}


@dataclass
class RuncTarget(PidTarget):
    runc_root: str | None = None
    started: bool = False

    @classmethod
    def create(cls, container_id: str, runc_root: str | None = None) -> "RuncTarget":
        state = runc_state(container_id, runc_root)
        pid, status = state["pid"], state["status"]
        if status not in ("created", "running"):
            raise InputError(f"runc container {container_id}", f"is {status}; record needs it created (runc create) or running")
        details = {"pid": pid, "status_at_attach": status, "runtime": runtime_version("runc"), **bundle_facts(state.get("bundle"))}
        if not details.get("no_new_privileges", True):
            details["warning"] = ("noNewPrivileges is false: runc installed the filter before dropping privileges, during "
                                  "`runc create`; those syscalls were not seen. Record with --runc-bundle instead.")
        target = cls("runc", container_id, PidTarget.create(pid).cgroup_path, details=details, pid=pid,
                     runc_root=runc_root, started=status == "running")
        return target

    def start(self) -> None:
        if not self.started:
            runc.start(self.name, root=self.runc_root)
            self.started = True


@dataclass
class RuncBundleTarget(PidTarget):
    """A container the tracer creates from BUNDLE, watched from before `runc create`."""

    bundle: Path = Path()
    runc_root: str | None = None
    workdir: Path | None = None
    output: str | None = None  # file for the container's stdout and stderr (default: ours)

    @classmethod
    def create(cls, bundle: str, container_id: str | None = None, runc_root: str | None = None,
               output: str | None = None) -> "RuncBundleTarget":
        source = runc.check_bundle(bundle)
        container_id = container_id or f"tracer-{os.getpid()}"
        runc.check_container_id(container_id)
        cgroup = cgroups.make_cgroup(f"runc-{container_id}")
        workdir = Path(tempfile.mkdtemp(prefix="tracer-bundle-"))
        config = recording_config(source, cgroup)
        (workdir / "config.json").write_text(json.dumps(config, indent=2))
        details = {"runtime": runtime_version("runc"), "container_id": container_id, **bundle_facts(str(source)),
                   "marker_filter": config["linux"]["seccomp"] is MARKER_SECCOMP}
        return cls("runc-bundle", container_id, cgroup, gated=True, details=details, bundle=workdir,
                   runc_root=runc_root, workdir=workdir, output=output, netns=named_netns(config))

    def start(self) -> None:
        runc.become_subreaper()
        stdio = open(self.output, "ab") if self.output else None
        try:
            self.pid = runc.create(self.bundle, self.name, root=self.runc_root, stdout=stdio, stderr=stdio)
        finally:
            if stdio:
                stdio.close()
        runc.start(self.name, root=self.runc_root)

    def finished(self) -> bool:
        if self.exit_status is None and self.pid:
            try:
                self.exit_status = runc.wait_exit(self.pid, timeout=0)
            except TimeoutError:
                return False
        return self.exit_status is not None

    def stop(self) -> None:
        if self.exit_status is None and self.pid:
            runc.kill(self.name, signal.SIGTERM, root=self.runc_root)
            try:
                self.exit_status = runc.wait_exit(self.pid, timeout=10)
            except TimeoutError:
                runc.kill(self.name, signal.SIGKILL, root=self.runc_root)
                self.exit_status = runc.wait_exit(self.pid, timeout=10)

    def close(self) -> None:
        try:
            runc.delete(self.name, force=True, root=self.runc_root)
        except runc.RuncError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)
        cgroups.remove_cgroup(self.cgroup_path)


def recording_config(bundle: Path, cgroup: Path) -> dict:
    """The bundle's config, placed in our cgroup, paths made absolute, with a seccomp filter."""
    config = json.loads((bundle / "config.json").read_text())
    root = config.setdefault("root", {"path": "rootfs"})
    root["path"] = str((bundle / root["path"]).resolve())
    for mount in config.get("mounts", []):
        source = mount.get("source", "")
        if source and not source.startswith("/") and ("bind" in mount.get("options", []) or mount.get("type") == "bind"):
            mount["source"] = str((bundle / source).resolve())
    linux = config.setdefault("linux", {})
    linux["cgroupsPath"] = "/" + str(cgroup.relative_to(cgroups.cgroup_v2_root()))
    linux["seccomp"] = linux.get("seccomp") or MARKER_SECCOMP
    return config


def named_netns(config: dict) -> str | None:
    """The named network namespace (ip netns, pyroute2) a container config joins, if any."""
    for namespace in config.get("linux", {}).get("namespaces", []):
        path = namespace.get("path", "")
        if namespace.get("type") == "network" and path.startswith(("/var/run/netns/", "/run/netns/")):
            return Path(path).name
    return None


def runc_state(container_id: str, runc_root: str | None = None) -> dict:
    try:
        return runc.state(container_id, root=runc_root)
    except runc.RuncError as err:
        raise InputError(f"runc container {container_id}", err.detail) from None


def runtime_version(binary: str) -> dict:
    try:
        first = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return {"name": binary, "version": None}
    return {"name": binary, "version": first.split()[-1]}


def bundle_facts(bundle: str | None) -> dict:
    """What the OCI bundle says about the recorded process: root fs mode, user, seccomp."""
    if not bundle:
        return {}
    try:
        config = json.loads((Path(bundle) / "config.json").read_text())
    except (OSError, ValueError):
        return {"bundle": bundle}
    process = config.get("process", {})
    return {
        "bundle": bundle,
        "rootfs_readonly": bool(config.get("root", {}).get("readonly", False)),
        "user": process.get("user", {}),
        "no_new_privileges": bool(process.get("noNewPrivileges", False)),
        "seccomp_during_recording": bool(config.get("linux", {}).get("seccomp")),
    }


# ---------------------------------------------------------------- --containerd


def containerd_target(task_id: str, namespace: str = "default", state_dir: str | Path = "/run/containerd") -> PidTarget:
    """A running containerd task, found through its runc shim's state directory (no API needed)."""
    task_dir = Path(state_dir) / "io.containerd.runtime.v2.task" / namespace / task_id
    try:
        pid = int((task_dir / "init.pid").read_text().strip())
    except FileNotFoundError:
        raise InputError(f"containerd task {namespace}/{task_id}", f"not found (no {task_dir}/init.pid)") from None
    target = PidTarget.create(pid)
    target.kind, target.name = "containerd", f"{namespace}/{task_id}"
    target.details.update(runtime=runtime_version("containerd"), **bundle_facts(str(task_dir)))
    return target


# ---------------------------------------------------------------- --kubernetes-pod


def kubernetes_pod_target(pod: str, container: str | None = None, cri_endpoint: str | None = None) -> Target:
    """A pod's container on this node, found through the CRI socket (no API server)."""
    from tracer.kube.cri.client import resolve_pod_container  # noqa: PLC0415 (grpc only when asked for)

    namespace, slash, name = pod.partition("/")
    if not slash or not namespace or not name:
        raise InputError(pod, "expected NAMESPACE/POD")
    found = resolve_pod_container(namespace, name, container, cri_endpoint=cri_endpoint)
    return Target("kubernetes-pod", pod, found.cgroup_path,
                  details={"container_id": found.container_id, "pod_uid": found.pod_uid, "container": container})
