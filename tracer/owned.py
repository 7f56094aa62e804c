"""What this run created, removed on every way out: a clean exit, an error, or SIGKILL.

Each thing is registered *before* it is made (a cgroup, a runc container, a scratch
directory) and forgotten once it is removed. The first registration starts a watchdog: a
small process that reads this process's registrations through a pipe. When the pipe
closes while things are still registered (this process died without cleaning up: SIGKILL,
the OOM killer, a crash), the watchdog kills their processes and removes them.

A parent-death signal would not do: it reaches one child, not the workload's
grandchildren, and not a runc container, whose init is no child of ours once runc exits.

Only what this run made is ever removed: a runc container is deleted only while its
bundle is the scratch directory this run made for it, so a container someone else made
under the same id survives.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from tracer import cgroups

# Kinds, in the order clean-up handles them.
STARTED = "started"  # processes we started in a cgroup we did not make: killed only
CGROUP = "cgroup"  # a cgroup we made: its processes killed, it removed (v2 and v1)
RUNC = "runc"  # a runc container we created: deleted
DIRECTORY = "directory"  # a scratch directory: removed


@dataclass(frozen=True)
class Owned:
    kind: str
    path: str = ""
    container_id: str = ""
    runc_root: str | None = None

    def describe(self) -> str:
        if self.kind == RUNC:
            return f"runc container {self.container_id}"
        return f"{'processes in cgroup' if self.kind == STARTED else self.kind} {self.path}"


def clean_up(items: list[Owned]) -> list[str]:
    """Stop and remove `items`; a problem per thing that could not be removed."""
    problems = []
    for item in items:
        if item.kind in (STARTED, CGROUP) and not cgroups.kill_cgroup(Path(item.path)):
            problems.append(f"{item.describe()}: processes still running after SIGKILL")
    for item in items:
        if item.kind == RUNC:
            problems += _delete_runc_container(item)
    for item in items:
        if item.kind == DIRECTORY:
            shutil.rmtree(item.path, ignore_errors=True)
            if os.path.exists(item.path):
                problems.append(f"{item.describe()}: could not be removed")
    for item in items:
        if item.kind == CGROUP:
            problems += [f"cgroup {left}: could not be removed" for left in cgroups.remove_everywhere(Path(item.path))]
    return problems


def _delete_runc_container(item: Owned) -> list[str]:
    from tracer import runc  # noqa: PLC0415 (the watchdog imports it only when needed)

    try:
        state = runc.state(item.container_id, root=item.runc_root)
    except runc.RuncError:
        return []  # never made, or already deleted
    if state.get("bundle") != item.path:
        return []  # someone else's container under that id
    try:
        runc.delete(item.container_id, force=True, root=item.runc_root)
    except runc.RuncError as err:
        return [f"{item.describe()}: {err}"]
    return []


class Ownership:
    """This process's registry of what it made, mirrored to the watchdog."""

    def __init__(self) -> None:
        self.items: list[Owned] = []
        self._watchdog: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def own(self, item: Owned) -> Owned:
        """Register `item`; call before making it."""
        with self._lock:
            if self._watchdog is None:
                self._watchdog = _start_watchdog()
                atexit.register(self.close)
            self.items.append(item)
            self._tell({"own": asdict(item)})
        return item

    def forget(self, item: Owned) -> None:
        with self._lock:
            if item in self.items:
                self.items.remove(item)
                self._tell({"forget": asdict(item)})

    def release(self, *items: Owned) -> list[str]:
        """Stop and remove `items` now, then forget them; each problem is a warning line."""
        problems = clean_up([item for item in items if item in self.items])
        for item in items:
            self.forget(item)
        for problem in problems:
            sys.stderr.write(f"warning: {problem}\n")
        return problems

    def close(self) -> list[str]:
        """Release everything still registered, and let the watchdog go."""
        problems = self.release(*self.items)
        with self._lock:
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.stdin.close()
            try:
                watchdog.wait(30)
            except subprocess.TimeoutExpired:
                watchdog.kill()
                watchdog.wait()
        return problems

    def _tell(self, message: dict) -> None:
        try:
            self._watchdog.stdin.write(json.dumps(message).encode() + b"\n")
            self._watchdog.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the watchdog is gone (killed by hand): we still clean up ourselves


OWNED = Ownership()


def _start_watchdog() -> subprocess.Popen:
    # Its own session: Ctrl-C or a signal to our process group does not reach it. It holds
    # no file of ours but the pipe, so it keeps no BPF program and no output pipe alive.
    return subprocess.Popen(
        [sys.executable, "-m", "tracer.owned", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def watchdog_main(tracer_pid: str) -> None:
    """Read registrations until the pipe closes; clean up whatever is still registered."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    items: list[Owned] = []
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "own" in message:
            items.append(Owned(**message["own"]))
        elif Owned(**message["forget"]) in items:
            items.remove(Owned(**message["forget"]))
    if not items:
        return
    problems = clean_up(items)
    sys.stderr.write(
        f"tracer watchdog: the tracer (pid {tracer_pid}) ended without cleaning up; stopped and removed "
        f"{', '.join(item.describe() for item in items)}"
        + (f"; left: {'; '.join(problems)}" if problems else "")
        + "\n"
    )


if __name__ == "__main__":
    watchdog_main(sys.argv[1])
