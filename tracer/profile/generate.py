"""generate: traces in, a profile directory out (seccomp.json, capabilities.json, recording.json)."""

from __future__ import annotations

from pathlib import Path

from tracer import __version__
from tracer.errors import InputError
from tracer.files import replace_directory, to_json
from tracer.profile.capabilities import capability_evidence, infer_capabilities
from tracer.profile.merge import Merged, below_min_runs, merge_runs, rare_syscalls, recordings_in
from tracer.profile.seccomp import build_profile, recorded_syscalls
from tracer.trace import Trace

# The files generate writes; anything else found in an existing profile directory (a README,
# the k8s/ output) is carried over into the new one.
PROFILE_FILES = ("seccomp.json", "capabilities.json", "recording.json")


def combined(traces: list[Trace]) -> Merged:
    """One trace whose final counters are the sum of all runs (same architecture only)."""
    if len(traces) == 1:
        return Merged(traces[0])
    return merge_runs(traces)


def incompleteness(trace: Trace) -> str | None:
    """Why a profile from this trace would be missing something, or None."""
    meta = trace.metadata
    if meta.get("startup_missed") is True:
        return ("the recording missed the workload's start-up (startup_missed: true): a profile from it would "
                "refuse what the workload does when it starts")
    if meta.get("complete") is False:
        stopped = f", stopped by {meta['stopped_by']}" if meta.get("stopped_by") else ""
        return (f"the recording is incomplete (complete: false{stopped}): a profile from it may miss what the "
                "workload did after its last checkpoint")
    return None


def check_complete(traces: list[Trace], allow_incomplete: bool) -> list[str]:
    """InputError for the first incomplete trace, or with allow_incomplete a warning for each."""
    warnings = []
    for trace in traces:
        why = incompleteness(trace)
        if why and not allow_incomplete:
            raise InputError(trace.source, f"{why}; record again, or pass --allow-incomplete")
        if why:
            warnings.append(f"{trace.source}: {why} (written anyway: --allow-incomplete)")
    return warnings


def recording_facts(traces: list[Trace]) -> dict:
    """What the recordings say about the process, for hardening decisions downstream."""
    targets = [run.get("target") or {} for trace in traces for run in recordings_in(trace)]
    readonly = [t.get("rootfs_readonly") for t in targets]
    uids = {(t.get("user") or {}).get("uid") for t in targets}
    return {
        "tool_version": __version__,
        "traces": [{"source": t.source, "target": t.metadata.get("target"), "started_at": t.metadata.get("started_at"),
                    "kernel": t.metadata.get("kernel"), "lost": t.lost} for t in traces],
        "rootfs_readonly": all(readonly) if readonly and None not in readonly else None,
        # With a read-only root every write the workload made went to a mounted volume or tmpfs.
        "writes_outside_volumes": False if readonly and None not in readonly and all(readonly) else None,
        "run_as_user": uids.pop() if len(uids) == 1 else None,
    }


def generate(traces: list[Trace], out: Path, default_action: str = "errno", extra_syscalls: list[str] = (),
             add_capabilities: list[str] = (), min_runs: int = 1, allow_incomplete: bool = False) -> dict:
    warnings = check_complete(traces, allow_incomplete)
    merged = combined(traces)
    trace = merged.trace
    syscalls = recorded_syscalls(trace)
    left_out = sorted(below_min_runs(trace, min_runs) & set(syscalls.allowed)) if min_runs > 1 else []
    syscalls.allowed = [name for name in syscalls.allowed if name not in left_out]
    if extra_syscalls:
        syscalls.allowed = sorted(set(syscalls.allowed) | set(extra_syscalls))
        syscalls.enosys_only = sorted(set(syscalls.enosys_only) - set(extra_syscalls))
    profile = build_profile(trace.arch, syscalls, default_action)
    # A capability checked only in syscalls the profile leaves out is evidence of nothing it allows.
    evidence = [row for row in capability_evidence(trace) if row.syscall not in left_out]
    capabilities = infer_capabilities(evidence, add_capabilities)
    facts = recording_facts(traces)
    replace_directory(out, {"seccomp.json": to_json(profile), "capabilities.json": to_json(capabilities),
                            "recording.json": to_json(facts)})
    return {"seccomp": profile, "capabilities": capabilities, "recording": facts, "syscalls": syscalls,
            "left_out": left_out, "rare": [n for n in rare_syscalls(trace) if n in syscalls.allowed],
            "warnings": warnings + merged.warnings}
