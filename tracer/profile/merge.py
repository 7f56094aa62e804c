"""merge: the union of several recordings (replicas, nodes, repeated load tests).

The merged trace keeps the summed counters as its totals, and in `runs` how many of the
input recordings each syscall and capability appeared in, so `generate --min-runs K` can
keep what is common and the report can name what is rare. Capability rows stay tied to the
syscall they were checked in, so evidence leaves a profile together with its syscall.

A recording given twice (the same start time, host and target, alone or inside a merged
trace) counts once, with a warning; recordings of different workloads (images, bundles or
targets) merge with a warning, since the profile then allows what each of them needed.
Counters are summed without wrap-around: a sum beyond 2^64-1 is an input error.
Recorded arguments are summed too; a syscall's arguments count as recorded only when every
input recorded them (a version 1 input has none), so one run's unknown arguments never pass for
"none used".
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tracer import __version__
from tracer.errors import InputError
from tracer.network.surface import NetworkSurface
from tracer.profile.capabilities import EVIDENCE_OF_NEED, capability_evidence
from tracer.syscalls import syscall_name
from tracer.trace.arguments import merge_arguments
from tracer.trace.format import PHASES, RESULTS, UINT64_MAX, Snapshot, Trace, exact_sums


@dataclass
class Merged:
    trace: Trace
    warnings: list[str] = field(default_factory=list)


def run_count(trace: Trace) -> int:
    return trace.runs["count"] if trace.runs else 1


def syscalls_seen(trace: Trace) -> Counter:
    """{syscall name: number of runs it appeared in} for one (possibly merged) trace."""
    if trace.runs:
        return Counter(trace.runs["syscalls"])
    return Counter(
        {syscall_name(trace.arch, int(nr)) or f"syscall_{nr}": 1 for nr in np.flatnonzero(trace.calls_by_nr())}
    )


def capabilities_seen(trace: Trace) -> Counter:
    """{capability: number of runs that used it or had a call fail without it}."""
    if trace.runs:
        return Counter(trace.runs["capabilities"])
    return Counter({row.capability: 1 for row in capability_evidence(trace) if row.verdict in EVIDENCE_OF_NEED})


# ---------------------------------------------------------------- which recordings


def recordings_in(trace: Trace) -> list[dict]:
    """The recordings a trace holds: itself, or for a merged trace those it was merged from."""
    if "merged_from" in trace.metadata:
        return list(trace.metadata["merged_from"])
    meta = trace.metadata
    return [
        {
            "source": trace.source,
            "target": meta.get("target"),
            "hostname": meta.get("hostname"),
            "started_at": meta.get("started_at"),
            "complete": meta.get("complete", True),
        }
    ]


def recording_identity(run: dict) -> tuple | None:
    """Start time, host and target: equal for the same recording, whatever its file is called."""
    if not run.get("started_at"):
        return None
    target = run.get("target") or {}
    return run["started_at"], run.get("hostname"), target.get("kind"), target.get("name")


def image_of(target: dict | None) -> str | None:
    """The image a recording was of: its digest reference where CRI gave one, else its name."""
    container = (target or {}).get("container")
    if isinstance(container, dict):
        return container.get("image_digest") or container.get("image") or None
    return None


def workload_of(target: dict | None) -> str:
    """What a recording was of, as merge compares them: the image, else the bundle, else the target."""
    if not target:
        return "no target"
    if image_of(target):
        return f"image {image_of(target)}"
    if target.get("bundle"):
        return f"bundle {target['bundle']}"
    return f"{target.get('kind', 'target')} {target.get('name', '?')}"


def distinct_recordings(traces: list[Trace]) -> tuple[list[Trace], list[str]]:
    """The traces without repeats of a recording already given, and a warning for each repeat."""
    kept, warnings, seen = [], [], {}
    for trace in traces:
        identities = [recording_identity(run) for run in recordings_in(trace)]
        repeated = [i for i in identities if i is not None and i in seen]
        if repeated and len(repeated) == len(identities):
            started, host = repeated[0][0], repeated[0][1]
            warnings.append(
                f"{trace.source} is the same recording as {seen[repeated[0]]} "
                f"(started {started} on {host}): counted once"
            )
            continue
        if repeated:
            raise InputError(
                trace.source,
                f"holds a recording that {seen[repeated[0]]} holds too "
                f"(started {repeated[0][0]}): merge the original recordings instead",
            )
        seen.update({identity: trace.source for identity in identities if identity is not None})
        kept.append(trace)
    return kept, warnings


def workload_warnings(traces: list[Trace]) -> list[str]:
    workloads: dict[str, str] = {}
    for trace in traces:
        for run in recordings_in(trace):
            workloads.setdefault(workload_of(run.get("target")), run.get("source") or trace.source)
    if len(workloads) < 2:
        return []
    listed = ", ".join(f"{workload} ({source})" for workload, source in workloads.items())
    return [f"merging recordings of different workloads: {listed}; the result allows what each of them needed"]


# ---------------------------------------------------------------- summing


def add_counters(total: np.ndarray, more: np.ndarray, source: str | None) -> np.ndarray:
    summed = total + more  # uint64: wraps silently, so check
    wrapped = np.argwhere(summed < total)
    if wrapped.size:
        phase, nr, result = wrapped[0]
        raise InputError(
            source,
            f"adding its {RESULTS[result]} of syscall {nr} in phase {PHASES[phase]} to the other traces' passes 2^64-1",
        )
    return summed


def add_count(total: int, more: int, source: str | None, what: str) -> int:
    if total + more > UINT64_MAX:
        raise InputError(source, f"adding its {what} to the other traces' passes 2^64-1")
    return total + more


def summed_totals(traces: list[Trace]) -> Snapshot:
    total = Snapshot.empty(max(t.final.t for t in traces))
    for trace in traces:
        total.syscalls = add_counters(total.syscalls, trace.final.syscalls, trace.source)
        for key, count in trace.final.capabilities.items():
            total.capabilities[key] = add_count(
                total.capabilities.get(key, 0), count, trace.source, f"capability row {list(key)}"
            )
        for column, value in enumerate(exact_sums(total.syscalls.reshape(-1, len(RESULTS)), axis=0)):
            if value > UINT64_MAX:
                raise InputError(trace.source, f"with it the merged {RESULTS[column]} add up to {value}, beyond 2^64-1")
    return total


def summed_lost(traces: list[Trace]) -> dict[str, int]:
    lost: dict[str, int] = {}
    for trace in traces:
        for reason, count in trace.lost.items():
            lost[reason] = add_count(lost.get(reason, 0), count, trace.source, f"lost counter {reason}")
    return lost


def merged_network(traces: list[Trace]) -> dict | None:
    """The union of the network surfaces the runs observed (tracer.network.surface), or None."""
    surfaces = [NetworkSurface.from_json(t.network, t.source) for t in traces if t.network is not None]
    if not surfaces:
        return None
    return functools.reduce(NetworkSurface.merge, surfaces).to_json()


def merge_runs(traces: list[Trace]) -> Merged:
    if not traces:
        raise InputError(None, "no traces to merge")
    first = traces[0]
    for other in traces[1:]:
        if other.arch != first.arch:
            raise InputError(other.source, f"architecture {other.arch} differs from {first.arch} in {first.source}")
    kept, warnings = distinct_recordings(traces)
    warnings += workload_warnings(kept)
    syscall_runs, capability_runs = Counter(), Counter()
    for trace in kept:
        syscall_runs.update(syscalls_seen(trace))
        capability_runs.update(capabilities_seen(trace))
    recordings = [run for trace in kept for run in recordings_in(trace)]
    metadata = {
        "tool": "seccomp-tracer",
        "tool_version": __version__,
        **{k: first.metadata.get(k) for k in ("arch", "machine", "kernel")},
        "merged_from": [
            {key: run.get(key) for key in ("source", "target", "hostname", "started_at")}
            | {"complete": run.get("complete", True) is not False}
            for run in recordings
        ],
        "complete": all(t.metadata.get("complete", True) is not False for t in kept),
        "startup_missed": any(t.metadata.get("startup_missed") is True for t in kept),
    }
    runs = {
        "count": sum(run_count(t) for t in kept),
        "syscalls": dict(sorted(syscall_runs.items())),
        "capabilities": dict(sorted(capability_runs.items())),
    }
    trace = Trace(
        metadata,
        lost=summed_lost(kept),
        runs=runs,
        source="merged",
        totals=summed_totals(kept),
        arguments=merge_arguments([t.arguments for t in kept]),
        network=merged_network(kept),
    )
    trace.keep(trace.totals)  # one point: the merged totals
    return Merged(trace, warnings)


def merge_traces(traces: list[Trace]) -> Trace:
    return merge_runs(traces).trace


def rare_syscalls(trace: Trace) -> list[str]:
    """Syscalls seen in one run only, when there were several."""
    seen = syscalls_seen(trace)
    return sorted(name for name, runs in seen.items() if runs == 1) if run_count(trace) > 1 else []


def below_min_runs(trace: Trace, min_runs: int) -> set[str]:
    return {name for name, runs in syscalls_seen(trace).items() if runs < min_runs}
