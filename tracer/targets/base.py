"""The targets every runtime shares: a cgroup v2 to watch, and a command, a PID or a cgroup
path that names one.

`gated` targets are watched from before the workload's first exec, so the recorder keeps
the runtime's own set-up (phase "runtime") apart from the workload; targets that are
already running are counted from the moment we attach.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tracer import cgroups
from tracer.errors import InputError
from tracer.owned import CGROUP, OWNED, Owned


@dataclass
class Target:
    kind: str
    name: str
    cgroup_path: Path
    gated: bool = False
    gate_from: str = "runtime"  # the gate's phase at the first event (see KernelRecorder)
    startup_missed: bool = False  # attached after the workload's first exec: its start-up is not seen
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

    def workload_pid(self) -> int | None:
        """A process of the workload that user space can look at (its network namespace), if known."""
        return None

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
    executable: str = ""  # argv[0] resolved on PATH by the tracer, so the workload execs once
    process: subprocess.Popen | None = None
    owned: list[Owned] = field(default_factory=list)

    def workload_pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @classmethod
    def create(cls, argv: list[str]) -> "CommandTarget":
        if not argv:
            raise InputError(None, "no command given after --")
        executable = shutil.which(argv[0])
        if executable is None:
            raise InputError(argv[0], "command not found")
        path = cgroups.new_cgroup_path("cmd")
        owned = [OWNED.own(Owned(CGROUP, str(path)))]
        cgroups.make_cgroup(path=path)
        return cls(
            "command",
            " ".join(argv),
            path,
            gated=True,
            argv=list(argv),
            executable=str(Path(executable).absolute()),
            owned=owned,
        )

    def start(self) -> None:
        procs = str(self.cgroup_path / "cgroup.procs")

        def join_cgroup() -> None:  # runs in the child between fork and exec
            with open(procs, "w") as handle:
                handle.write("0")

        # An absolute executable: one execve in the cgroup, no PATH search that the
        # recorder would count as the workload's.
        self.process = subprocess.Popen(self.argv, executable=self.executable, preexec_fn=join_cgroup)

    def finished(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self.exit_status = _shell_status(self.process.returncode)
        return True

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to every process of the workload, as a container runtime stops a
        container; what is left after `grace` is killed with the cgroup in close()."""
        if self.process is None or self.process.poll() is not None:
            return
        cgroups.signal_cgroup(self.cgroup_path, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while cgroups.subtree_pids(self.cgroup_path) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        OWNED.release(*self.owned)  # kills whatever is left (grandchildren too) and removes the cgroup
        if self.process is not None:
            try:
                self.exit_status = _shell_status(self.process.wait(timeout=10))
            except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): reported by release()
                pass


def _shell_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


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

    def workload_pid(self) -> int | None:
        return self.pid or None


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
