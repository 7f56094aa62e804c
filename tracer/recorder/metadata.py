"""What every trace says of its recording, whichever recorder made it."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

from tracer import __version__
from tracer.arch import native_oci_arch
from tracer.recorder.loop import RecordOptions
from tracer.targets.base import Target


def recording_metadata(target: Target, capability_source: str, options: RecordOptions, started_at: str) -> dict:
    """What a trace says of the recording that made it: the tool, the machine, the target, the gate."""
    uname = os.uname()
    return {
        "tool": "seccomp-tracer",
        "tool_version": __version__,
        "kernel": uname.release,
        "machine": uname.machine,
        "arch": native_oci_arch(),
        "hostname": uname.nodename,
        "python": platform.python_version(),
        "target": target.metadata(),
        "capability_source": capability_source,
        "gate": _gate_description(target),
        "interval_s": options.interval,
        "ready_url": options.ready_url,
        "started_at": started_at,
        "ended_at": started_at,
        "complete": False,
        **({"startup_missed": True} if target.startup_missed else {}),
    }


def _gate_description(target: Target) -> str:
    if not target.gated:
        return "none (attached to a running target)"
    if target.gate_from == "handover":
        return "runtime hand-over (attached after the filter install; opens at the first exec)"
    return "runtime hand-over (seccomp filter install or first exec)"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
