"""runc containers: one the user created (`--runc ID`), or one the tracer creates from a
bundle (`--runc-bundle`) and watches from before `runc create`.

Where runc installs the seccomp filter decides which of its own syscalls the profile must
allow. Measured with runc 1.1.5 (tests/live/test_record_runc.py): with noNewPrivileges it installs
the filter before it signals `runc create` that set-up is done; everything after that
(reopening its exec fifo through /proc/self/fd: openat, write, close, getpid, fstatfs,
getdents64, epoll_ctl, futex, then execve) runs under the filter. Without noNewPrivileges
it installs it earlier still, before dropping privileges (capset, setgroups, setresuid...).

So a container the user created and has not started (`created`) is gated at its
hand-over: everything from our attach to the workload's first exec is runc's (phase
"handover": its init reopening the exec fifo under the filter, and the capability checks
that makes, e.g. CAP_DAC_OVERRIDE for a uid-1000 process opening /proc/self/fd), and the
workload counts from its exec. A container already `running` is counted from the moment we
attach, and its trace says so (`startup_missed: true`). A container we create ourselves is
gated on the filter install itself: we record it under an allow-all "marker" filter when its
config has none, so runc makes the seccomp() call exactly where the real profile will be loaded.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tracer import cgroups, runc
from tracer.errors import InputError
from tracer.oci import check_bundle, named_netns, process_facts, read_config, write_config
from tracer.owned import CGROUP, DIRECTORY, OWNED, RUNC, STARTED, Owned
from tracer.targets.base import PidTarget, process_alive

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
            raise InputError(
                f"runc container {container_id}", f"is {status}; record needs it created (runc create) or running"
            )
        details = {
            "pid": pid,
            "status_at_attach": status,
            "runtime": runtime_version("runc"),
            **bundle_facts(state.get("bundle")),
        }
        if not details.get("no_new_privileges", True):
            details["warning"] = (
                "noNewPrivileges is false: runc installed the filter before dropping privileges, during "
                "`runc create`; those syscalls were not seen. Record with --runc-bundle instead."
            )
        target = cls(
            "runc",
            container_id,
            PidTarget.create(pid).cgroup_path,
            gated=status == "created",
            gate_from="handover",
            details=details,
            pid=pid,
            runc_root=runc_root,
            started=status == "running",
            startup_missed=status == "running",
        )
        return target

    owned: list[Owned] = field(default_factory=list)

    def start(self) -> None:
        if not self.started:
            # The recording starts it, so the recording's end stops it (never deletes it).
            self.owned.append(OWNED.own(Owned(STARTED, str(self.cgroup_path))))
            runc.start(self.name, root=self.runc_root)
            self.started = True

    def stop(self) -> None:
        if self.owned:
            stop_runc_container(self.name, self.pid, self.runc_root)

    def close(self) -> None:
        OWNED.release(*self.owned)


def stop_runc_container(container_id: str, pid: int, runc_root: str | None, grace: float = 10.0) -> None:
    """SIGTERM to the container's init, SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            runc.kill(container_id, sig, root=runc_root)
        except runc.RuncError:
            return  # already stopped
        deadline = time.monotonic() + grace
        while process_alive(pid) and time.monotonic() < deadline:
            runc.reap_runc_orphans(keep=pid)  # an exiting init waits for runc's zombie helpers
            time.sleep(0.05)
        if not process_alive(pid):
            return


@dataclass
class RuncBundleTarget(PidTarget):
    """A container the tracer creates from BUNDLE, watched from before `runc create`."""

    bundle: Path = Path()
    runc_root: str | None = None
    workdir: Path | None = None
    output: str | None = None  # file for the container's stdout and stderr (default: ours)
    owned: list[Owned] = field(default_factory=list)

    @classmethod
    def create(
        cls, bundle: str, container_id: str | None = None, runc_root: str | None = None, output: str | None = None
    ) -> "RuncBundleTarget":
        source = check_bundle(bundle)
        container_id = container_id or unique_container_id("tracer")
        check_unused_container_id(container_id, runc_root)
        cgroup = cgroups.new_cgroup_path(f"runc-{container_id}")
        workdir = Path(tempfile.gettempdir()) / f"tracer-bundle-{container_id}-{secrets.token_hex(4)}"
        owned = [
            OWNED.own(Owned(CGROUP, str(cgroup))),
            OWNED.own(Owned(DIRECTORY, str(workdir))),
            OWNED.own(Owned(RUNC, str(workdir), container_id, runc_root)),
        ]
        try:
            workdir.mkdir(mode=0o700)
            cgroups.make_cgroup(path=cgroup)
            config = recording_config(source, cgroup)
            write_config(workdir, config)
        except BaseException:
            OWNED.release(*owned)
            raise
        details = {
            "runtime": runtime_version("runc"),
            "container_id": container_id,
            **bundle_facts(str(source)),
            "marker_filter": config["linux"]["seccomp"] is MARKER_SECCOMP,
        }
        return cls(
            "runc-bundle",
            container_id,
            cgroup,
            gated=True,
            details=details,
            bundle=workdir,
            runc_root=runc_root,
            workdir=workdir,
            output=output,
            netns=named_netns(config),
            owned=owned,
        )

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
            stop_runc_container(self.name, self.pid, self.runc_root)
            self._reap()

    def close(self) -> None:
        OWNED.release(*self.owned)
        if self.exit_status is None and self.pid:  # killed with its cgroup
            self._reap()

    def _reap(self) -> None:
        """The container's init is our child (we are its subreaper): collect its status."""
        try:
            self.exit_status = runc.wait_exit(self.pid, timeout=10)
        except (TimeoutError, ChildProcessError):
            pass


def unique_container_id(prefix: str) -> str:
    """An id no earlier or concurrent run uses: pids are reused, random bits are not."""
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(4)}"


def check_unused_container_id(container_id: str, runc_root: str | None) -> None:
    """A container under that id is someone else's: refuse before anything is made."""
    runc.check_container_id(container_id)
    if runc.exists(container_id, root=runc_root):
        raise InputError(
            f"runc container {container_id}",
            "already exists; choose another id (--runc-id) "
            "(--runc-bundle creates its own container; --runc ID records an existing one)",
        )


def recording_config(bundle: Path, cgroup: Path) -> dict:
    """The bundle's config, placed in our cgroup, paths made absolute, with a seccomp filter."""
    config = read_config(bundle)
    root = config.setdefault("root", {"path": "rootfs"})
    root["path"] = str((bundle / root["path"]).resolve())
    for mount in config.get("mounts", []):
        source = mount.get("source", "")
        if (
            source
            and not source.startswith("/")
            and ("bind" in mount.get("options", []) or mount.get("type") == "bind")
        ):
            mount["source"] = str((bundle / source).resolve())
    linux = config.setdefault("linux", {})
    linux["cgroupsPath"] = "/" + str(cgroup.relative_to(cgroups.cgroup_v2_root()))
    linux["seccomp"] = linux.get("seccomp") or MARKER_SECCOMP
    return config


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
    """What the OCI bundle says about the recorded process (see oci.process_facts)."""
    if not bundle:
        return {}
    try:
        config = read_config(bundle)
    except InputError:
        return {"bundle": bundle}
    return {"bundle": bundle, **process_facts(config)}
