"""The trace file: one versioned JSON document per recording (docs/trace-format.md, the schema
in docs/trace.schema.json).

Everything downstream (show, generate, merge, diff, verify reports) reads a trace through
`load_trace`, whether it was written a second ago by `tracer record` or is a fixture. Version 2
is written: the final counters (`totals`) and a bounded series of points (`snapshots`, see
tracer/trace/series.py). Version 1 (every checkpoint's full counters) is still read, and
upgraded in memory. Every document is checked against the schema and the rules a schema
cannot state before anything uses it; any problem is one `InputError` naming the file and
the JSON path.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import orjson

from tracer.errors import InputError
from tracer.files import atomic_write_bytes, read_json
from tracer.schema import Schema, SchemaViolation, load_schema
from tracer.syscalls import MAX_SYSCALL_NR
from tracer.trace.arguments import Arguments, arguments_to_document, parse_arguments
from tracer.trace.series import SeriesPoint, SnapshotSeries

FORMAT = "seccomp-tracer-trace"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SCHEMA_FILE = Path(__file__).with_name("data") / "trace.schema.json"  # a link to docs/trace.schema.json
# A version 2 trace is at most a few MiB (its series is bounded); a larger file is refused
# before it is parsed, which bounds the memory a load can take.
MAX_TRACE_BYTES = 32 * 2**20
# The schema lets metadata carry fields it does not name (later recorders may say more); their
# nesting is bounded so that every command can print them (orjson writes at most 254 levels).
MAX_METADATA_DEPTH = 32
UINT64_MAX = 2**64 - 1

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
    "container_slots_full",
)
LOST_REASONS = KERNEL_LOST_REASONS + ("bpf_recursion_misses", "unattributed_capability_checks")


# ---------------------------------------------------------------- counters


def exact_sums(values: np.ndarray, axis: int) -> list[int]:
    """Sums of uint64 counters along `axis` as Python ints: exact however large (each half
    of the 64 bits is summed apart, which cannot wrap for fewer than 2^32 terms)."""
    values = np.asarray(values, np.uint64)
    high = (values >> np.uint64(32)).sum(axis=axis, dtype=np.uint64)
    low = (values & np.uint64(0xFFFFFFFF)).sum(axis=axis, dtype=np.uint64)
    return [(int(h) << 32) + int(lo) for h, lo in zip(np.ravel(high), np.ravel(low))]


def checked_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """numpy's uint64 sum along `axis`, or OverflowError where it would have wrapped around."""
    terms = values.shape[axis] if values.ndim else 1
    if values.size and int(values.max()) > UINT64_MAX // max(terms, 1):
        exact = exact_sums(np.moveaxis(values, axis, -1).reshape(-1, terms), axis=1)
        if max(exact) > UINT64_MAX:
            raise OverflowError("counters add up to 2^64 or more")
    return values.sum(axis=axis, dtype=np.uint64)


class Snapshot:
    """Cumulative counters at `t` seconds after the recording started."""

    def __init__(self, t: float, syscalls: np.ndarray, capabilities: dict[tuple[int, int, int, int], int]):
        self.t = t
        self.syscalls = syscalls  # uint64 [phase, nr, result]
        self.capabilities = capabilities  # (phase, cap, nr, outcome) -> count

    def calls_in(self, phases) -> np.ndarray:
        """Calls per syscall number, summed over the given phases."""
        return checked_sum(self.syscalls[[PHASES.index(p) for p in phases], :, 0], axis=0)

    def calls_per_phase(self) -> list[int]:
        return exact_sums(self.syscalls[:, :, 0], axis=1)

    @classmethod
    def empty(cls, t: float = 0.0) -> "Snapshot":
        return cls(t, np.zeros((len(PHASES), MAX_SYSCALL_NR, len(RESULTS)), np.uint64), {})


class Trace:
    """A recording: metadata, the final counters (`totals`, also `final`), the bounded series
    of checkpoints (`snapshots`), lost counters, and for merged traces `runs`.

    `Trace(metadata, [snapshot, ...])` keeps each snapshot in turn, as a recording does."""

    def __init__(
        self,
        metadata: dict,
        snapshots=(),
        lost: dict | None = None,
        runs: dict | None = None,
        source: str | None = None,
        *,
        series: SnapshotSeries | None = None,
        totals: Snapshot | None = None,
        arguments: Arguments | None = None,
        network: dict | None = None,
    ):
        self.metadata = metadata
        self.lost = dict(lost or {})
        self.runs = runs  # merged traces: {"count": N, "syscalls": {...}, "capabilities": {...}}
        self.source = source
        self.series = series if series is not None else SnapshotSeries(len(PHASES), MAX_SYSCALL_NR)
        self.totals = totals if totals is not None else Snapshot.empty()
        self.arguments = arguments  # None: not recorded (a version 1 trace); see tracer.trace.arguments
        self.network = network  # tracer.network.NetworkSurface.to_json(), or None: not observed
        for snapshot in snapshots:
            self.keep(snapshot)

    def keep(self, snapshot: Snapshot) -> None:
        """A checkpoint: its counters become the totals and a point of the bounded series."""
        calls = snapshot.syscalls[:, :, 0]
        seen = [key for key, count in snapshot.capabilities.items() if count]
        self.series.record(snapshot.t, calls, seen, exact_sums(calls, axis=1))
        self.totals = snapshot

    @property
    def final(self) -> Snapshot:
        return self.totals

    @property
    def snapshots(self) -> list[SeriesPoint]:
        return self.series.points

    @property
    def arch(self) -> str:
        return self.metadata["arch"]

    def calls_by_nr(self, phases=PROFILE_PHASES) -> np.ndarray:
        """Total calls per syscall number over the given phases (final counters)."""
        return self.final.calls_in(phases)

    def lost_total(self) -> int:
        return int(sum(self.lost.values()))


# ---------------------------------------------------------------- writing


def syscall_rows(snapshot: Snapshot) -> list[list[int]]:
    phases, nrs = np.nonzero(snapshot.syscalls[:, :, 0])
    counts = snapshot.syscalls[phases, nrs].tolist()
    return [[p, n, *row] for p, n, row in zip(phases.tolist(), nrs.tolist(), counts)]


def capability_rows(snapshot: Snapshot) -> list[list[int]]:
    return [[p, c, n, o, int(count)] for (p, c, n, o), count in sorted(snapshot.capabilities.items()) if count]


def _head_document(trace: Trace) -> dict:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "phases": list(PHASES),
        "results": list(RESULTS),
        "cap_outcomes": list(CAP_OUTCOMES),
        "metadata": trace.metadata,
        "lost": {**{reason: 0 for reason in LOST_REASONS}, **{k: int(v) for k, v in trace.lost.items()}},
        "totals": {
            "t": round(float(trace.totals.t), 3),
            "syscalls": syscall_rows(trace.totals),
            "capabilities": capability_rows(trace.totals),
        },
        "snapshots_dropped": trace.series.dropped,
    }
    for key in ("network", "runs"):
        if getattr(trace, key) is not None:
            doc[key] = getattr(trace, key)
    if trace.arguments is not None:
        doc["arguments"] = arguments_to_document(trace.arguments)
    return doc


def trace_to_document(trace: Trace) -> dict:
    return {**_head_document(trace), "snapshots": [point.to_document() for point in trace.snapshots]}


def encode_trace(trace: Trace) -> bytes:
    """The document as bytes. The series' points are encoded once each and joined, so the
    cost does not grow with the number of checkpoints behind it."""
    head = orjson.dumps(_head_document(trace))
    return head[:-1] + b',"snapshots":' + trace.series.encoded() + b"}\n"


def write_trace(trace: Trace, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, encode_trace(trace))


# ---------------------------------------------------------------- reading


@cache
def trace_schema() -> Schema:
    return load_schema(SCHEMA_FILE)


def load_trace(path: str | os.PathLike) -> Trace:
    """Read and validate a trace (version 1 or 2); any problem is an InputError naming the file
    and the JSON path of what is wrong."""
    source = str(path)
    doc = read_json(path, "a trace file", max_bytes=MAX_TRACE_BYTES)
    version = _check_format(source, doc)
    try:
        trace_schema().check(doc, f"#/$defs/traceV{version}")
        _check_depth(doc["metadata"], ("metadata",), MAX_METADATA_DEPTH)
        trace = _trace_v1(doc) if version == 1 else _trace_v2(source, doc)
    except SchemaViolation as err:
        raise InputError(source, str(err)) from None
    trace.source = source
    return trace


def _check_format(source: str, doc) -> int:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(source, f"not a seccomp-tracer trace (format is {found!r}, expected {FORMAT!r})")
    version = doc.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # neither true nor 1.0 is version 1
        written = ", written as integers" if isinstance(version, float) else ""
        raise InputError(
            source,
            f"trace format version {version!r} is not supported "
            f"(this tracer reads versions {', '.join(map(str, READABLE_VERSIONS))}{written})",
        )
    return version


def _trace_v2(source: str, doc: dict) -> Trace:
    totals = _snapshot(("totals",), doc["totals"])
    points = [_series_point(("snapshots", i), point) for i, point in enumerate(doc["snapshots"])]
    _check_series(points, totals)
    series = SnapshotSeries.from_points(points, doc["snapshots_dropped"], len(PHASES), MAX_SYSCALL_NR)
    if "runs" in doc:
        _check_runs(doc["runs"])
    arguments = parse_arguments(source, doc["arguments"], PHASES) if "arguments" in doc else None
    return Trace(
        doc["metadata"],
        lost=doc["lost"],
        runs=doc.get("runs"),
        series=series,
        totals=totals,
        arguments=arguments,
        network=doc.get("network"),
    )


def _trace_v1(doc: dict) -> Trace:
    """Version 1 kept every checkpoint's full counters: its last snapshot is the totals, and
    the series is rebuilt from all of them (and thinned like a recording's)."""
    trace = Trace(upgrade_metadata_v1(doc["metadata"]), lost=doc.get("lost", {}))
    for index, snap in enumerate(doc["snapshots"]):
        trace.keep(_snapshot(("snapshots", index), snap))
    _check_series(trace.snapshots, trace.totals, version=1)
    if "runs" in doc:
        runs = {key: doc["runs"][key] for key in ("count", "syscalls", "capabilities")}
        _check_runs(runs)
        trace.runs = runs
    return trace


def upgrade_metadata_v1(metadata: dict) -> dict:
    """Version 1 named a pod's container by a string; version 2 describes pod and container."""
    metadata = dict(metadata)
    if isinstance(metadata.get("target"), dict):
        metadata["target"] = _upgrade_target_v1(metadata["target"])
    if "merged_from" in metadata:
        metadata["merged_from"] = [
            {
                "source": run.get("source"),
                "target": _upgrade_target_v1(run["target"]) if run.get("target") else None,
                "hostname": run.get("hostname"),
                "started_at": run.get("started_at"),
            }
            for run in metadata["merged_from"]
        ]
    return metadata


def _upgrade_target_v1(target: dict) -> dict:
    target = dict(target)
    container = target.pop("container", None)
    if container is not None or target.get("kind") == "kubernetes-pod":
        target["container"] = {k: v for k, v in (("name", container), ("id", target.get("container_id"))) if v}
    namespace, slash, pod = str(target.get("name", "")).partition("/")
    if target.get("kind") == "kubernetes-pod" and slash and namespace and pod:
        target["pod"] = {
            "namespace": namespace,
            "name": pod,
            **({"uid": target["pod_uid"]} if target.get("pod_uid") else {}),
        }
    return target


# ---------------------------------------------------------------- the rules a schema cannot state


def _check_depth(value, path: tuple, limit: int) -> None:
    """No list or object in VALUE lies more than LIMIT levels below it (iterative: a deep
    document cannot exhaust the stack)."""
    pending = [(value, path)]
    while pending:
        node, where = pending.pop()
        if len(where) - len(path) > limit:
            raise SchemaViolation(where[: len(path) + 1], f"nested more than {limit} levels deep")
        if isinstance(node, dict):
            pending.extend((item, where + (key,)) for key, item in node.items())
        elif isinstance(node, list):
            pending.extend((item, where + (index,)) for index, item in enumerate(node))


def _snapshot(path: tuple, doc: dict) -> Snapshot:
    """Counters from rows the schema has checked: no duplicate row, error counts within the
    calls, and totals that fit 64 bits (so no sum of them wraps around)."""
    snap = Snapshot.empty(float(doc["t"]))
    seen = np.zeros((len(PHASES), MAX_SYSCALL_NR), bool)
    for index, (phase, nr, calls, *errors) in enumerate(doc.get("syscalls", ())):
        where = path + ("syscalls", index)
        if seen[phase, nr]:
            raise SchemaViolation(where, f"a second row for phase {PHASES[phase]} syscall {nr}")
        seen[phase, nr] = True
        for column, count in enumerate(errors, start=1):
            if count > calls:
                raise SchemaViolation(
                    where + (column + 2,), f"{RESULTS[column]} {count} is more than the {calls} calls"
                )
        snap.syscalls[phase, nr] = (calls, *errors)
    for column, total in enumerate(exact_sums(snap.syscalls.reshape(-1, len(RESULTS)), axis=0)):
        if total > UINT64_MAX:
            raise SchemaViolation(
                path + ("syscalls",), f"{RESULTS[column]} add up to {total}, beyond 2^64-1: no counter holds that many"
            )
    for index, (phase, cap, nr, outcome, count) in enumerate(doc.get("capabilities", ())):
        key = (phase, cap, nr, outcome)
        if key in snap.capabilities:
            raise SchemaViolation(path + ("capabilities", index), f"a second row for {list(key)}")
        snap.capabilities[key] = count
    return snap


def _series_point(path: tuple, doc: dict) -> SeriesPoint:
    for key, rows in (("new_syscalls", doc["new_syscalls"]), ("new_capabilities", doc["new_capabilities"])):
        if len({tuple(row) for row in rows}) != len(rows):
            raise SchemaViolation(path + (key,), "a row is listed twice")
    return SeriesPoint(
        doc["n"],
        doc["t"],
        doc["phase"],
        tuple(doc["calls"]),
        [tuple(row) for row in doc["new_syscalls"]],
        [tuple(row) for row in doc["new_capabilities"]],
    )


def _check_series(points: list[SeriesPoint], totals: Snapshot, version: int = VERSION) -> None:
    """Points in order, within the totals, each row first seen once and present in the totals
    (counters are cumulative: a row never disappears, a count never passes the total). For
    version 1 the points were rebuilt from its snapshots, numbered by snapshot: a problem
    names the snapshot."""
    called = totals.syscalls[:, :, 0] > 0
    per_phase = totals.calls_per_phase()
    final = "the totals" if version == 2 else "the last snapshot"
    seen_syscalls, seen_capabilities = set(), set()
    for index, (before, point) in enumerate(zip([None, *points], points)):
        path = ("snapshots", index if version == 2 else point.n)
        rows_path = (lambda key: path + (key,)) if version == 2 else (lambda key: path)
        if before is not None and (point.n <= before.n or point.t < before.t):
            raise SchemaViolation(path, f"comes before the one above it (n {point.n}, t {point.t})")
        if point.t > totals.t:
            raise SchemaViolation(path + ("t",), f"{point.t} is later than the t {totals.t} of {final}")
        for phase, (calls, total) in enumerate(zip(point.calls, per_phase)):
            if calls > total:
                raise SchemaViolation(
                    rows_path("calls"), f"{calls} calls in phase {PHASES[phase]}, more than the {total} of {final}"
                )
        for row in point.new_syscalls:
            if row in seen_syscalls or not called[row]:
                problem = "first seen twice" if row in seen_syscalls else f"not in {final}"
                raise SchemaViolation(rows_path("new_syscalls"), f"syscall row {list(row)} is {problem}")
            seen_syscalls.add(row)
        for row in point.new_capabilities:
            if row in seen_capabilities or not totals.capabilities.get(row):
                problem = "first seen twice" if row in seen_capabilities else f"not in {final}"
                raise SchemaViolation(rows_path("new_capabilities"), f"capability row {list(row)} is {problem}")
            seen_capabilities.add(row)


def _check_runs(runs: dict) -> None:
    for key in ("syscalls", "capabilities"):
        for name, count in runs[key].items():
            if count > runs["count"]:
                raise SchemaViolation(("runs", key, name), f"{count} runs, but the trace merges {runs['count']}")
