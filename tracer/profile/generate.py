"""generate: traces in, a profile directory out (seccomp.json, capabilities.json, recording.json).

`plan_profile` makes the whole directory in memory (a `ProfileDraft`, which `diff` compares
too) and `write_profile_dir` writes it.

recording.json also keeps the evidence behind the profile (calls per syscall, the recorded
arguments, why a name was added without being recorded), which `tracer risk` and the
comparison with the runtime default cite for every place the profile allows more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracer import __version__
from tracer.errors import InputError
from tracer.files import replace_directory, to_json
from tracer.profile.against import Comparison, Evidence, compare
from tracer.profile.capabilities import capability_evidence, infer_capabilities
from tracer.profile.conditions import ArgumentPolicy, argument_policy
from tracer.profile.filter import Filter, filter_from_oci, parse_kernel_version, runtime_default
from tracer.profile.merge import Merged, below_min_runs, merge_runs, rare_syscalls, recordings_in
from tracer.profile.seccomp import (
    RUNC_HANDOVER_SYSCALLS,
    RecordedSyscalls,
    build_profile,
    name_only_policy,
    recorded_syscalls,
)
from tracer.syscalls import syscall_name
from tracer.trace.arguments import arguments_to_document
from tracer.trace.format import PROFILE_PHASES, Trace

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
        return (
            "the recording missed the workload's start-up (startup_missed: true): a profile from it would "
            "refuse what the workload does when it starts"
        )
    if meta.get("complete") is False:
        stopped = f", stopped by {meta['stopped_by']}" if meta.get("stopped_by") else ""
        return (
            f"the recording is incomplete (complete: false{stopped}): a profile from it may miss what the "
            "workload did after its last checkpoint"
        )
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
        "traces": [
            {
                "source": t.source,
                "target": t.metadata.get("target"),
                "started_at": t.metadata.get("started_at"),
                "kernel": t.metadata.get("kernel"),
                "lost": t.lost,
            }
            for t in traces
        ],
        "rootfs_readonly": all(readonly) if readonly and None not in readonly else None,
        # With a read-only root every write the workload made went to a mounted volume or tmpfs.
        "writes_outside_volumes": False if readonly and None not in readonly and all(readonly) else None,
        "run_as_user": uids.pop() if len(uids) == 1 else None,
    }


def profile_evidence(trace: Trace, syscalls: RecordedSyscalls, extra_syscalls, hand_added_reason: str) -> dict:
    """The recorded calls behind the allow-list, the recorded arguments (profile phases), and
    why each allowed name that was not recorded is there."""
    calls = trace.calls_by_nr(PROFILE_PHASES)
    by_name = {syscall_name(trace.arch, int(nr)): int(calls[nr]) for nr in np.flatnonzero(calls)}
    sources = {}
    for name in syscalls.allowed:
        if by_name.get(name):
            continue
        if name in extra_syscalls:
            sources[name] = hand_added_reason
        elif name in RUNC_HANDOVER_SYSCALLS:
            sources[name] = "runc's hand-over set, measured (tracer.profile.seccomp.RUNC_HANDOVER_SYSCALLS)"
    arguments = trace.arguments.in_phases(PROFILE_PHASES) if trace.arguments is not None else None
    return {
        "syscalls": dict(sorted(by_name.items())),
        "sources": sources,
        "arguments": arguments_to_document(arguments) if arguments is not None else None,
    }


def trace_kernel(trace: Trace) -> tuple[int, int] | None:
    return parse_kernel_version(trace.metadata.get("kernel"))


@dataclass(frozen=True)
class ProfileOptions:
    """How `tracer generate` turns traces into a profile (its command-line options)."""

    default_action: str = "errno"
    extra_syscalls: tuple[str, ...] = ()
    extra_reason: str = "added from a complain-mode log"
    add_capabilities: tuple[str, ...] = ()
    min_runs: int = 1
    allow_incomplete: bool = False
    arguments: bool = True
    ioctl_requests: bool = False


@dataclass
class ProfileDraft:
    """A profile directory planned from traces, not yet written: its three documents, and
    how they came about."""

    arch: str
    kernel: tuple[int, int] | None
    seccomp: dict
    capabilities: dict
    recording: dict
    syscalls: RecordedSyscalls
    policy: ArgumentPolicy
    left_out: list[str]  # recorded, in fewer runs than --min-runs
    rare: list[str]  # allowed, seen in one run only
    warnings: list[str]

    @property
    def filter(self) -> Filter:
        return filter_from_oci(self.seccomp)

    @property
    def fallback_names(self) -> set[str]:
        """Recorded names the profile answers ENOSYS by design, so that libraries fall back."""
        return set(self.syscalls.enosys_only) | self.policy.enosys

    def against_runtime_default(self, profile_name: str = "the profile") -> Comparison:
        return against_runtime_default(
            self.seccomp, self.capabilities["add"], self.arch, self.recording, self.kernel, profile_name=profile_name
        )


def plan_profile(traces: list[Trace], options: ProfileOptions = ProfileOptions()) -> ProfileDraft:
    """The profile directory these traces make; writes nothing."""
    warnings = check_complete(traces, options.allow_incomplete)
    merged = combined(traces)
    trace = merged.trace
    syscalls = recorded_syscalls(trace)
    left_out = sorted(below_min_runs(trace, options.min_runs) & set(syscalls.allowed)) if options.min_runs > 1 else []
    syscalls.allowed = [name for name in syscalls.allowed if name not in left_out]
    extra = set(options.extra_syscalls)
    if extra:
        syscalls.allowed = sorted(set(syscalls.allowed) | extra)
        syscalls.enosys_only = sorted(set(syscalls.enosys_only) - extra)
    # A capability checked only in syscalls the profile leaves out is evidence of nothing it allows.
    evidence = [row for row in capability_evidence(trace) if row.syscall not in left_out]
    capabilities = infer_capabilities(evidence, list(options.add_capabilities))
    kernel = trace_kernel(trace)
    runtime = runtime_default(capabilities["add"], trace.arch, kernel)
    policy = (
        argument_policy(
            trace.arch,
            set(syscalls.allowed),
            trace.arguments,
            runtime,
            ioctl_requests=options.ioctl_requests,
            source=trace.source,
        )
        if options.arguments
        else name_only_policy(trace.arch, syscalls.allowed)
    )
    recording = recording_facts(traces)
    recording["evidence"] = profile_evidence(trace, syscalls, extra, options.extra_reason)
    return ProfileDraft(
        trace.arch,
        kernel,
        build_profile(trace.arch, syscalls, options.default_action, policy),
        capabilities,
        recording,
        syscalls,
        policy,
        left_out,
        [n for n in rare_syscalls(trace) if n in syscalls.allowed],
        warnings + merged.warnings,
    )


def write_profile_dir(draft: ProfileDraft, out: Path) -> None:
    """Write the draft as the profile directory `out`, replacing it as a unit."""
    documents = (draft.seccomp, draft.capabilities, draft.recording)
    replace_directory(out, {name: to_json(document) for name, document in zip(PROFILE_FILES, documents)})


def against_runtime_default(
    seccomp: dict,
    capabilities: list[str],
    arch: str,
    recording: dict | None,
    kernel: tuple[int, int] | None = None,
    profile_name: str = "the profile",
) -> Comparison:
    """The comparison `tracer risk --against runtime-default` makes, for a profile in hand."""
    caps = ", ".join(capabilities) or "no capabilities"
    return compare(
        filter_from_oci(seccomp),
        runtime_default(capabilities, arch, kernel),
        arch,
        Evidence.from_recording(recording),
        profile_name=profile_name,
        baseline_name=f"the runtime default (Docker's default profile for {caps}, {arch})",
    )
