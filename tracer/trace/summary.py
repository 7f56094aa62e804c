"""Human and machine summaries of a trace (`tracer show`)."""

from __future__ import annotations

import numpy as np

from tracer.profile.capabilities import capability_evidence
from tracer.syscalls import syscall_name
from tracer.trace.arguments import arguments_to_document
from tracer.trace.format import PHASES, PROFILE_PHASES, RESULTS, Trace


def _name(trace: Trace, nr: int) -> str:
    return syscall_name(trace.arch, nr) or f"syscall_{nr}"


def trace_summary(trace: Trace) -> dict:
    final = trace.final.syscalls
    phases = {}
    for p, phase in enumerate(PHASES):
        rows = {}
        for nr in np.flatnonzero(final[p, :, 0]):
            rows[_name(trace, int(nr))] = {r: int(final[p, nr, i]) for i, r in enumerate(RESULTS)}
        phases[phase] = dict(sorted(rows.items(), key=lambda kv: -kv[1]["calls"]))
    totals = trace.calls_by_nr(PROFILE_PHASES)
    syscalls = {_name(trace, int(nr)): int(totals[nr]) for nr in np.flatnonzero(totals)}
    return {
        "source": trace.source,
        "metadata": trace.metadata,
        "syscalls": dict(sorted(syscalls.items(), key=lambda kv: (-kv[1], kv[0]))),
        "phases": phases,
        "capabilities": [
            {"capability": e.capability, **e.to_json(), "explanation": e.explain()}
            for e in capability_evidence(trace, PHASES)
        ],
        "series": {"points": len(trace.snapshots), "dropped": trace.series.dropped},
        "lost": trace.lost,
        "lost_total": trace.lost_total(),
        "runs": trace.runs,
        "arguments": arguments_to_document(trace.arguments) if trace.arguments is not None else None,
    }


PHASE_NOTES = {
    "runtime": "  (container runtime's set-up: not in the profile)",
    "handover": "  (runtime's hand-over under the filter: in the profile, its capability checks are not)",
}


def format_summary_text(summary: dict, top: int | None = None) -> str:
    meta = summary["metadata"]
    target = meta.get("target") or {}
    lines = [
        f"trace {summary['source']}",
        f"  target   {target.get('kind', 'merged')} {target.get('name', '')}".rstrip(),
        f"  kernel   {meta.get('kernel')} ({meta.get('arch')}), capabilities from {meta.get('capability_source', '?')}",
        f"  recorded {meta.get('started_at', '?')} .. {meta.get('ended_at', '?')}",
        f"  series   {summary['series']['points']} points kept, {summary['series']['dropped']} checkpoints thinned out",
        f"  workload syscalls {len(summary['syscalls'])}, calls {sum(summary['syscalls'].values()):,}",
    ]
    for phase, rows in summary["phases"].items():
        if not rows:
            continue
        note = PHASE_NOTES.get(phase, "")
        lines.append(f"\nphase {phase}: {len(rows)} syscalls, {sum(r['calls'] for r in rows.values()):,} calls{note}")
        lines.append(f"  {'syscall':<24}{'calls':>12}{'EPERM':>8}{'EACCES':>8}{'ENOSYS':>8}")
        for name, r in list(rows.items())[:top]:
            lines.append(f"  {name:<24}{r['calls']:>12,}{r['EPERM']:>8}{r['EACCES']:>8}{r['ENOSYS']:>8}")
    if summary["capabilities"]:
        lines.append("\ncapability checks")
        lines.extend(f"  {row['explanation']}" for row in summary["capabilities"])
    lines.extend(argument_lines(summary["arguments"]))
    lost = {k: v for k, v in summary["lost"].items() if v}
    lines.append("\nlost counters: " + (", ".join(f"{k} {v}" for k, v in lost.items()) if lost else "none"))
    return "\n".join(lines)


def argument_lines(arguments: dict | None) -> list[str]:
    """The recorded argument rows, named: "socket AF_NETLINK NETLINK_ROUTE  2x startup"."""
    if arguments is None:
        return ["\narguments: not recorded (trace format version 1)"]
    from tracer.profile.against import describe_call, kernel_values  # noqa: PLC0415
    from tracer.trace.arguments import ARGUMENT_FIELDS, ArgumentRow  # noqa: PLC0415

    lines = [f"\narguments recorded for {', '.join(arguments['recorded']) or 'no syscall'}"]
    for doc in arguments["rows"]:
        row = ArgumentRow(
            doc["syscall"],
            doc["phase"],
            tuple(doc[f] for f in ARGUMENT_FIELDS[doc["syscall"]]),
            doc["errno"],
            doc["count"],
        )
        what = describe_call(row.syscall, kernel_values(row.syscall, row)) if row.arguments() else row.syscall
        if row.syscall == "ioctl":
            what += f" on {row['device'] or 'an unknown descriptor'}"
        elif row.syscall == "connect":
            what += (
                f" {row['address']}:{row['port']}" if row["port"] is not None else f" {row['address'] or ''}".rstrip()
            )
        elif row.syscall == "clone3":
            what += f" flags {row['flags']:#x}" if row["flags"] is not None else " (clone_args unreadable)"
        result = "ok" if row.errno == 0 else f"errno {row.errno}"
        lines.append(f"  {what:<52}{row.count:>8}x  {row.phase:<8} {result}")
    return lines
