"""generate: traces in, a profile directory out (seccomp.json, capabilities.json, recording.json)."""

from __future__ import annotations

from pathlib import Path

from tracer import __version__
from tracer.profile.capabilities import capability_evidence, infer_capabilities
from tracer.errors import InputError
from tracer.files import atomic_write_json
from tracer.profile.seccomp import build_profile, recorded_syscalls
from tracer.trace import Trace


def combined(traces: list[Trace]) -> Trace:
    """One trace whose final counters are the sum of all runs (same architecture only)."""
    if len(traces) == 1:
        return traces[0]
    arches = {t.arch for t in traces}
    if len(arches) > 1:
        raise InputError(traces[1].source, f"architecture {traces[1].arch} differs from {traces[0].arch} in {traces[0].source}")
    from tracer.profile.merge import merge_traces  # noqa: PLC0415

    return merge_traces(traces)


def recording_facts(traces: list[Trace]) -> dict:
    """What the recordings say about the process, for hardening decisions downstream."""
    targets = [t.metadata.get("target", {}) for t in traces]
    readonly = [t.get("rootfs_readonly") for t in targets]
    uids = {t.get("user", {}).get("uid") for t in targets}
    return {
        "tool_version": __version__,
        "traces": [{"source": t.source, "target": t.metadata.get("target"), "started_at": t.metadata.get("started_at"),
                    "kernel": t.metadata.get("kernel"), "lost": t.lost} for t in traces],
        "rootfs_readonly": all(readonly) if None not in readonly else None,
        # With a read-only root every write the workload made went to a mounted volume or tmpfs.
        "writes_outside_volumes": False if None not in readonly and all(readonly) else None,
        "run_as_user": uids.pop() if len(uids) == 1 else None,
    }


def generate(traces: list[Trace], out: Path, default_action: str = "errno", extra_syscalls: list[str] = (),
             add_capabilities: list[str] = (), min_runs: int = 1) -> dict:
    from tracer.profile.merge import below_min_runs, rare_syscalls  # noqa: PLC0415

    trace = combined(traces)
    syscalls = recorded_syscalls(trace)
    left_out = sorted(below_min_runs(trace, min_runs) & set(syscalls.allowed)) if min_runs > 1 else []
    syscalls.allowed = [name for name in syscalls.allowed if name not in left_out]
    if extra_syscalls:
        syscalls.allowed = sorted(set(syscalls.allowed) | set(extra_syscalls))
        syscalls.enosys_only = sorted(set(syscalls.enosys_only) - set(extra_syscalls))
    profile = build_profile(trace.arch, syscalls, default_action)
    capabilities = infer_capabilities(capability_evidence(trace), add_capabilities)
    facts = recording_facts(traces)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory")
    atomic_write_json(out / "seccomp.json", profile)
    atomic_write_json(out / "capabilities.json", capabilities)
    atomic_write_json(out / "recording.json", facts)
    return {"seccomp": profile, "capabilities": capabilities, "recording": facts, "syscalls": syscalls,
            "left_out": left_out, "rare": [n for n in rare_syscalls(trace) if n in syscalls.allowed]}
