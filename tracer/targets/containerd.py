"""containerd tasks (`--containerd ID`), found through the runc shim's state directory."""

from __future__ import annotations

from pathlib import Path

from tracer.errors import InputError
from tracer.targets.base import PidTarget
from tracer.targets.runc import bundle_facts, runtime_version


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
