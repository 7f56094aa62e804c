"""merge: the union of several recordings (replicas, nodes, repeated load tests).

The merged trace keeps the summed counters as one snapshot, and in `runs` how many of the
input recordings each syscall and capability appeared in, so `generate --min-runs K` can
keep what is common and the report can name what is rare. Recorded arguments are summed
too; a syscall's arguments count as recorded only when every input recorded them (a
version 1 input has none), so one run's unknown arguments never pass for "none used".
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from tracer import __version__
from tracer.arguments import merge_arguments
from tracer.profile.capabilities import capability_evidence
from tracer.errors import InputError
from tracer.syscalls import syscall_name
from tracer.trace import Snapshot, Trace


def run_count(trace: Trace) -> int:
    return trace.runs["count"] if trace.runs else 1


def syscalls_seen(trace: Trace) -> Counter:
    """{syscall name: number of runs it appeared in} for one (possibly merged) trace."""
    if trace.runs:
        return Counter(trace.runs["syscalls"])
    return Counter({syscall_name(trace.arch, int(nr)) or f"syscall_{nr}": 1 for nr in np.flatnonzero(trace.calls_by_nr())})


def capabilities_seen(trace: Trace) -> Counter:
    if trace.runs:
        return Counter(trace.runs["capabilities"])
    return Counter({row.capability: 1 for row in capability_evidence(trace) if row.verdict in ("required", "used")})


def merge_traces(traces: list[Trace]) -> Trace:
    if not traces:
        raise InputError(None, "no traces to merge")
    first = traces[0]
    for other in traces[1:]:
        if other.arch != first.arch:
            raise InputError(other.source, f"architecture {other.arch} differs from {first.arch} in {first.source}")
    total = Snapshot.empty(max(t.final.t for t in traces))
    syscall_runs, capability_runs, lost = Counter(), Counter(), Counter()
    for trace in traces:
        total.syscalls += trace.final.syscalls
        for key, count in trace.final.capabilities.items():
            total.capabilities[key] = total.capabilities.get(key, 0) + count
        syscall_runs.update(syscalls_seen(trace))
        capability_runs.update(capabilities_seen(trace))
        lost.update(trace.lost)
    metadata = {
        **{k: first.metadata.get(k) for k in ("arch", "machine", "kernel")},
        "tool_version": __version__,
        "merged_from": [{"source": t.source, "target": t.metadata.get("target"), "hostname": t.metadata.get("hostname"),
                         "started_at": t.metadata.get("started_at")} for t in traces],
        "complete": all(t.metadata.get("complete", True) for t in traces),
    }
    runs = {"count": sum(run_count(t) for t in traces), "syscalls": dict(sorted(syscall_runs.items())),
            "capabilities": dict(sorted(capability_runs.items()))}
    return Trace(metadata, [total], dict(lost), runs, source="merged",
                 arguments=merge_arguments([t.arguments for t in traces]))


def rare_syscalls(trace: Trace) -> list[str]:
    """Syscalls seen in one run only, when there were several."""
    seen = syscalls_seen(trace)
    return sorted(name for name, runs in seen.items() if runs == 1) if run_count(trace) > 1 else []


def below_min_runs(trace: Trace, min_runs: int) -> set[str]:
    return {name for name, runs in syscalls_seen(trace).items() if runs < min_runs}
