"""containerd tasks (`--containerd ID`), found through the runc shim's state directory."""

from __future__ import annotations

from pathlib import Path

from tracer.errors import InputError
from tracer.targets.base import PidTarget
from tracer.targets.runc import bundle_facts, runtime_version

RUNC_INIT_COMM = "runc:[2:INIT]"  # runc's init names itself so until it execs the workload


def containerd_target(task_id: str, namespace: str = "default", state_dir: str | Path = "/run/containerd") -> PidTarget:
    """A containerd task, created or running, found through its runc shim's state directory (no API needed)."""
    task_dir = Path(state_dir) / "io.containerd.runtime.v2.task" / namespace / task_id
    try:
        pid = int((task_dir / "init.pid").read_text().strip())
    except FileNotFoundError:
        raise InputError(f"containerd task {namespace}/{task_id}", f"not found (no {task_dir}/init.pid)") from None
    target = PidTarget.create(pid)
    target.kind, target.name = "containerd", f"{namespace}/{task_id}"
    created = runc_init_waiting(pid)
    # Created, not started (containerd's Tasks.Create without Start): gated at runc's hand-over,
    # as `--runc ID`; whoever created it starts it. Running: its start-up is behind it.
    target.gated, target.gate_from, target.startup_missed = created, "handover", not created
    target.details.update(
        status_at_attach="created" if created else "running",
        runtime=runtime_version("containerd"),
        **bundle_facts(str(task_dir)),
    )
    return target


def runc_init_waiting(pid: int) -> bool:
    """Whether `pid` is still runc's init, waiting on its exec fifo for `runc start`."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == RUNC_INIT_COMM
    except OSError:
        return False
