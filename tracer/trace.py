"""The trace file: one versioned JSON document per recording (see docs/trace-format.md).

Everything downstream (show, generate, merge, verify reports) reads a trace through
`load_trace`, whether it was written a second ago by `tracer record` or is a fixture.
Counters are cumulative per snapshot, so a checkpoint taken at any interval is a complete,
self-consistent trace on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from tracer.arguments import Arguments, arguments_to_document, parse_arguments
from tracer.errors import InputError, atomic_write_bytes
from tracer.syscalls import MAX_SYSCALL_NR

FORMAT = "seccomp-tracer-trace"
VERSION = 2
# Version 1 has no `arguments` section: its syscalls' arguments are unknown.
READABLE_VERSIONS = (1, 2)

PHASES = ("runtime", "handover", "startup", "load")
# Everything that runs under the container's seccomp filter: the profile allows these calls.
PROFILE_PHASES = ("handover", "startup", "load")
# The workload's own phases (after its exec): its capability checks count.
WORKLOAD_PHASES = ("startup", "load")
RESULTS = ("calls", "EPERM", "EACCES", "ENOSYS")
CAP_OUTCOMES = ("granted", "denied_failed", "denied_other_error", "denied_no_effect")
# Indices of the kernel's `lost` counters (recorder.bpf.c LOST_*), then what the loader adds.
KERNEL_LOST_REASONS = (
    "syscall_nr_out_of_range",
    "cap_out_of_range",
    "pending_map_full",
    "cap_map_full",
    "arg_map_full",
    "connect_map_full",
    "registers_unreadable",
)
LOST_REASONS = KERNEL_LOST_REASONS + ("bpf_recursion_misses", "unattributed_capability_checks")

SYSCALL_ROW = 2 + len(RESULTS)  # phase, nr, then one count per result
CAP_ROW = 5  # phase, cap, nr, outcome, count


@dataclass
class Snapshot:
    """Cumulative counters at `t` seconds after the recording started."""

    t: float
    syscalls: np.ndarray  # uint64 [phase, nr, result]
    capabilities: dict[tuple[int, int, int, int], int]  # (phase, cap, nr, outcome) -> count

    def calls_in(self, phases) -> np.ndarray:
        """Calls per syscall number, summed over the given phases."""
        return self.syscalls[[PHASES.index(p) for p in phases], :, 0].sum(axis=0)

    @classmethod
    def empty(cls, t: float = 0.0) -> "Snapshot":
        return cls(t, np.zeros((len(PHASES), MAX_SYSCALL_NR, len(RESULTS)), np.uint64), {})


@dataclass
class Trace:
    metadata: dict
    snapshots: list[Snapshot]
    lost: dict[str, int] = field(default_factory=dict)
    runs: dict | None = None  # for merged traces: {"count": N, "syscalls": {...}, "capabilities": {...}}
    source: str | None = None
    arguments: Arguments | None = None  # None: not recorded (a version 1 trace)

    @property
    def final(self) -> Snapshot:
        return self.snapshots[-1] if self.snapshots else Snapshot.empty()

    @property
    def arch(self) -> str:
        return self.metadata["arch"]

    @property
    def times(self) -> np.ndarray:
        return np.array([s.t for s in self.snapshots], dtype=float)

    def syscall_series(self) -> np.ndarray:
        """uint64 [snapshot, phase, nr, result], for convergence and rate analysis."""
        if not self.snapshots:
            return Snapshot.empty().syscalls[None]
        return np.stack([s.syscalls for s in self.snapshots])

    def calls_by_nr(self, phases=PROFILE_PHASES) -> np.ndarray:
        """Total calls per syscall number over the given phases (final snapshot)."""
        return self.final.calls_in(phases)

    def lost_total(self) -> int:
        return int(sum(self.lost.values()))


# ---------------------------------------------------------------- writing


def trace_to_document(trace: Trace) -> dict:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "phases": list(PHASES),
        "results": list(RESULTS),
        "cap_outcomes": list(CAP_OUTCOMES),
        "metadata": trace.metadata,
        "lost": {reason: int(trace.lost.get(reason, 0)) for reason in LOST_REASONS},
        "snapshots": [_snapshot_to_document(s) for s in trace.snapshots],
    }
    if trace.runs is not None:
        doc["runs"] = trace.runs
    if trace.arguments is not None:
        doc["arguments"] = arguments_to_document(trace.arguments)
    return doc


def _snapshot_to_document(snap: Snapshot) -> dict:
    phases, nrs = np.nonzero(snap.syscalls[:, :, 0])
    rows = [[int(p), int(n), *map(int, snap.syscalls[p, n])] for p, n in zip(phases, nrs)]
    caps = [[p, c, n, o, int(count)] for (p, c, n, o), count in sorted(snap.capabilities.items())]
    return {"t": round(float(snap.t), 3), "syscalls": rows, "capabilities": caps}


def write_trace(trace: Trace, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, orjson.dumps(trace_to_document(trace)) + b"\n")


# ---------------------------------------------------------------- reading


def load_trace(path: str | os.PathLike) -> Trace:
    """Read and validate a trace; any problem is an InputError naming the file."""
    source = str(path)
    doc = _read_json(Path(path))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(source, f"not a seccomp-tracer trace (format is {found!r}, expected {FORMAT!r})")
    if doc.get("version") not in READABLE_VERSIONS:
        raise InputError(source, f"trace format version {doc.get('version')!r} is not supported (this tracer reads versions "
                                 f"{', '.join(map(str, READABLE_VERSIONS))})")
    for key, expected in (("phases", PHASES), ("results", RESULTS), ("cap_outcomes", CAP_OUTCOMES)):
        if tuple(doc.get(key, ())) != expected:
            raise InputError(source, f"{key} are {doc.get(key)!r}, expected {list(expected)!r}")
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("arch"), str):
        raise InputError(source, "metadata is missing or has no arch")
    snapshots = [_parse_snapshot(source, i, s) for i, s in enumerate(_list(source, doc, "snapshots"))]
    lost = doc.get("lost", {})
    if not isinstance(lost, dict) or not all(isinstance(v, int) and v >= 0 for v in lost.values()):
        raise InputError(source, "lost counters must be an object of non-negative integers")
    arguments = parse_arguments(source, doc["arguments"], PHASES) if doc["version"] >= 2 and "arguments" in doc else None
    return Trace(metadata, snapshots, dict(lost), doc.get("runs"), source, arguments)


def _read_json(path: Path):
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a directory, expected a trace file") from None
    except OSError as err:
        raise InputError(source, f"cannot read: {err.strerror}") from None
    if not data.strip():
        raise InputError(source, "is empty")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if err.pos >= len(data.rstrip()) - 1:
            raise InputError(source, f"truncated: JSON ends early at byte {len(data)}") from None
        raise InputError(source, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


def _list(source: str, doc: dict, key: str) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InputError(source, f"{key!r} must be a list")
    return value


def _parse_snapshot(source: str, index: int, doc) -> Snapshot:
    where = f"snapshot {index}"
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), (int, float)):
        raise InputError(source, f"{where}: expected an object with a time 't'")
    snap = Snapshot.empty(float(doc["t"]))
    for row in _list(source, doc, "syscalls") if "syscalls" in doc else []:
        phase, nr, *counts = _int_row(source, where, row, SYSCALL_ROW, "syscall")
        if not 0 <= phase < len(PHASES):
            raise InputError(source, f"{where}: unknown phase index {phase}")
        if not 0 <= nr < MAX_SYSCALL_NR:
            raise InputError(source, f"{where}: syscall number {nr} out of range 0..{MAX_SYSCALL_NR - 1}")
        snap.syscalls[phase, nr] = counts
    for row in doc.get("capabilities", []):
        phase, cap, nr, outcome, count = _int_row(source, where, row, CAP_ROW, "capability")
        if not (0 <= phase < len(PHASES) and 0 <= cap < 64 and 0 <= nr < MAX_SYSCALL_NR and 0 <= outcome < len(CAP_OUTCOMES)):
            raise InputError(source, f"{where}: capability row {row} out of range")
        snap.capabilities[(phase, cap, nr, outcome)] = count
    return snap


def _int_row(source: str, where: str, row, width: int, what: str) -> list[int]:
    if not (isinstance(row, list) and len(row) == width and all(isinstance(v, int) and v >= 0 for v in row)):
        raise InputError(source, f"{where}: {what} row {row!r} must be {width} non-negative integers")
    return row
