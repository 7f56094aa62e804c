"""Drive `runc` for one container: create, start, state, kill, delete, run to completion.

`create` and `start` are separate so a tracer can attach to the created (but not yet
running) container first. The container's stdio is whatever file descriptors the caller
passes to `create` (never a terminal); runc's own error messages are read from its
`--log` file, so they never mix with the container's output.

A created container's init is re-parented when `runc create` exits. To learn its exit
status, call `become_subreaper()` first: the init then becomes our child and
`wait_exit(pid)` can reap it.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from tracer.errors import InputError, MachineError
from tracer.oci import check_bundle

# Same rule as runc's own container id check.
CONTAINER_ID = re.compile(r"^[\w+\-.]+$")
PR_SET_CHILD_SUBREAPER = 36

Stdio = int | IO | None


class RuncError(MachineError):
    """A runc command failed at run time (exit 3); the message carries runc's stderr on one line."""

    def __init__(self, command: list[str], detail: str, returncode: int | None = None):
        self.command, self.detail, self.returncode = command, detail.strip(), returncode
        status = "" if returncode is None else f" (exit {returncode})"
        one_line = "; ".join(line.strip() for line in self.detail.splitlines() if line.strip())
        super().__init__(" ".join(_without_options(command)), f"failed{status}: {one_line}")


def _without_options(command: list[str]) -> list[str]:
    """`runc create ID` of `/usr/sbin/runc --log F --log-format json create --bundle B --pid-file P ID`."""
    words, skip = ["runc"], False
    for word in command[1:]:
        if skip:
            skip = False
        elif word.startswith("--"):
            skip = word in ("--root", "--log", "--log-format", "--bundle", "--pid-file", "--cgroup")
        else:
            words.append(word)
    return words


def runc_binary() -> str:
    path = shutil.which("runc")
    if path is None:
        raise RuncError(["runc"], "runc is not installed or not on PATH (scripts/setup installs it)")
    return path


def create(
    bundle: str | Path,
    container_id: str,
    *,
    root: str | Path | None = None,
    pid_file: str | Path | None = None,
    stdin: Stdio = subprocess.DEVNULL,
    stdout: Stdio = subprocess.DEVNULL,
    stderr: Stdio = subprocess.DEVNULL,
) -> int:
    """`runc create`: set the container up, stopped before its process runs; return its pid.

    stdin/stdout/stderr (a file object, a file descriptor or subprocess.DEVNULL) become
    the container process's stdio.
    """
    bundle = check_bundle(bundle)
    check_container_id(container_id)
    pid_file = Path(pid_file) if pid_file else bundle / f"{container_id}.pid"
    with tempfile.TemporaryDirectory(prefix="runc-log-") as log_dir:
        log_file = Path(log_dir) / "runc.log"
        command = [
            *global_args(root),
            "--log",
            str(log_file),
            "--log-format",
            "json",
            "create",
            "--bundle",
            str(bundle),
            "--pid-file",
            str(pid_file),
            container_id,
        ]
        done = subprocess.run(command, stdin=stdin, stdout=stdout, stderr=stderr, check=False)
        if done.returncode != 0:
            raise RuncError(command, read_log_errors(log_file), done.returncode)
    return int(pid_file.read_text())


def start(container_id: str, *, root: str | Path | None = None) -> None:
    """`runc start`: run the process of a created container."""
    runc(["start", container_id], root)


def state(container_id: str, *, root: str | Path | None = None) -> dict:
    """`runc state`: {"id", "pid", "status" (created|running|stopped), "bundle", ...}."""
    return json.loads(runc(["state", container_id], root))


def exists(container_id: str, *, root: str | Path | None = None) -> bool:
    try:
        state(container_id, root=root)
    except RuncError as err:
        if "does not exist" in err.detail:
            return False
        raise
    return True


def kill(container_id: str, sig: int | str = signal.SIGTERM, *, root: str | Path | None = None) -> None:
    """`runc kill`: send `sig` (a number, signal.Signals or a name such as "TERM") to init."""
    runc(["kill", container_id, signal_name(sig)], root)


def delete(container_id: str, *, force: bool = True, root: str | Path | None = None) -> None:
    """`runc delete`: remove the container and its cgroup (force: even if running or missing)."""
    runc(["delete", *(["--force"] if force else []), container_id], root)


def run_to_completion(
    bundle: str | Path,
    container_id: str,
    *,
    root: str | Path | None = None,
    stdin: Stdio = subprocess.DEVNULL,
    stdout: Stdio = subprocess.DEVNULL,
    stderr: Stdio = subprocess.DEVNULL,
    timeout: float | None = None,
) -> int:
    """`runc run` in the foreground; return the container's exit code (128+N if killed by N).

    On timeout the container is killed and deleted and RuncError is raised.
    """
    bundle = check_bundle(bundle)
    check_container_id(container_id)
    command = [*global_args(root), "run", "--bundle", str(bundle), container_id]
    process = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        delete(container_id, force=True, root=root)
        process.wait()
        raise RuncError(command, f"container did not exit within {timeout}s; killed") from None


def become_subreaper() -> None:
    """Make orphaned descendants (a created container's init) children of this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def wait_exit(pid: int, timeout: float) -> int:
    """Reap container init `pid` (needs become_subreaper()); return exit code, 128+N if signalled."""
    deadline = time.monotonic() + timeout
    while True:
        reap_runc_orphans(keep=pid)
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        if time.monotonic() > deadline:
            raise TimeoutError(f"container process {pid} still running after {timeout}s")
        time.sleep(0.02)


def reap_runc_orphans(keep: int) -> None:
    """Reap runc's own helper processes that ended up our children.

    As a subreaper we inherit the intermediate processes of `runc exec` (comm
    runc:[1:CHILD] ...) when runc exits before them. Unreaped, they stay in the container's
    PID namespace as zombies, and the container's init, exiting, waits for them forever
    (zap_pid_ns_processes). Only runc's are reaped, never `keep` (the container's init):
    other children belong to their Popen."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z" and fields[1] == me and comm.startswith("runc:") and int(entry.name) != keep:
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass


def runc(args: list[str], root: str | Path | None) -> str:
    """Run one runc command, return its stdout, raise RuncError with its stderr on failure."""
    command = [*global_args(root), *args]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuncError(command, done.stderr or done.stdout, done.returncode)
    return done.stdout


def global_args(root: str | Path | None) -> list[str]:
    return [runc_binary(), *(["--root", str(root)] if root else [])]


def read_log_errors(log_file: Path) -> str:
    """The error messages of a runc --log-format json log, one per line."""
    try:
        lines = log_file.read_text().splitlines()
    except FileNotFoundError:
        return "runc wrote no log"
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    errors = [e.get("msg", "") for e in entries if e.get("level") in ("error", "fatal")]
    return "\n".join(errors) or "\n".join(lines[-5:])


def signal_name(sig: int | str) -> str:
    if isinstance(sig, str):
        name = sig.upper() if sig.upper().startswith("SIG") else f"SIG{sig.upper()}"
        if name not in signal.Signals.__members__:
            raise InputError(None, f"unknown signal {sig!r}")
        return name
    return signal.Signals(sig).name


def check_container_id(container_id: str) -> None:
    if not CONTAINER_ID.match(container_id):
        raise InputError(None, f"invalid container id {container_id!r} (letters, digits, _ + - . only)")
