"""Trace format version 2: the schema, version 1 still read, the bounded series, checked sums."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import orjson
import pytest

from support.paths import FIXTURES, REPO
from tracer.arch import ARCHITECTURES
from tracer.capabilities import CAPABILITY_NAMES, HIGHEST_CAPABILITY
from tracer.cli import main
from tracer.errors import InputError
from tracer.schema import ANNOTATIONS, KEYWORDS, Schema, SchemaViolation
from tracer.trace.arguments import arguments_to_document
from tracer.trace.format import (
    MAX_TRACE_BYTES,
    PHASES,
    SCHEMA_FILE,
    Snapshot,
    Trace,
    checked_sum,
    exact_sums,
    load_trace,
    trace_to_document,
    write_trace,
)
from tracer.trace.series import SnapshotSeries

TRACES = sorted(FIXTURES.glob("*.trace.json"))  # version 2, as recorded now
V1 = REPO / "tests/data/v1"  # real version 1 recordings (the fixtures before version 2)
V1_TRACES = sorted(V1.glob("*.trace.json"))
SCHEMA = json.loads((REPO / "docs/trace.schema.json").read_text())


@pytest.fixture(scope="module")
def validator():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def test_the_package_reads_the_documented_schema():
    assert SCHEMA_FILE.resolve() == (REPO / "docs/trace.schema.json").resolve()


def test_schema_uses_only_keywords_the_loader_checks():
    def keywords(node):
        if isinstance(node, dict):
            yield from node
            for key, value in node.items():
                if key not in ("properties", "$defs", "const", "enum"):
                    yield from keywords(value)
                elif key in ("properties", "$defs"):
                    for sub in value.values():
                        yield from keywords(sub)
        elif isinstance(node, list):
            for item in node:
                yield from keywords(item)

    assert set(keywords(SCHEMA)) <= KEYWORDS | ANNOTATIONS


def test_schema_constants_agree_with_the_code():
    defs = SCHEMA["$defs"]
    assert defs["arch"]["enum"] == [arch.oci for arch in ARCHITECTURES if arch.machine]  # what a tracer records on
    assert defs["capability"]["maximum"] == HIGHEST_CAPABILITY == CAPABILITY_NAMES.index("CAP_CHECKPOINT_RESTORE") == 40
    assert defs["phases"]["const"] == list(PHASES)


def final_rows(trace: Trace) -> dict:
    return {(p, n): trace.final.syscalls[p, n].tolist() for p, n in zip(*np.nonzero(trace.final.syscalls[:, :, 0]))}


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_fixtures_are_version_2_and_validate_and_load(path, validator):
    doc = orjson.loads(path.read_bytes())
    assert doc["version"] == 2
    validator.validate(doc)
    trace = load_trace(path)
    totals = doc["totals"]
    assert {(r[0], r[1]): r[2:] for r in totals["syscalls"]} == final_rows(trace)
    assert trace.final.capabilities == {tuple(r[:4]): r[4] for r in totals["capabilities"]}
    assert trace.final.t == totals["t"]
    assert [p.to_document() for p in trace.snapshots] == doc["snapshots"]
    assert trace.series.dropped == doc["snapshots_dropped"]
    assert trace.arguments is not None and arguments_to_document(trace.arguments) == doc["arguments"]


def test_version_1_data_is_real_version_1():
    assert {"http-server.trace.json", "shell-nonroot.trace.json"} <= {p.name for p in V1_TRACES}
    for path in V1_TRACES:
        doc = orjson.loads(path.read_bytes())
        assert doc["version"] == 1 and "totals" not in doc and "arguments" not in doc
        assert all(set(snap) == {"t", "syscalls", "capabilities"} for snap in doc["snapshots"])
    assert len(orjson.loads((V1 / "http-server.trace.json").read_bytes())["snapshots"]) > 1  # a series to rebuild


@pytest.mark.parametrize("path", V1_TRACES, ids=lambda p: p.name)
def test_version_1_data_validates_loads_and_upgrades(path, validator, tmp_path):
    doc = orjson.loads(path.read_bytes())
    assert doc["version"] == 1
    validator.validate(doc)
    trace = load_trace(path)
    last = doc["snapshots"][-1]
    assert {(r[0], r[1]): r[2:] for r in last["syscalls"]} == final_rows(trace)
    assert trace.final.capabilities == {tuple(r[:4]): r[4] for r in last["capabilities"]}
    assert trace.final.t == last["t"]
    assert len(trace.snapshots) == len(doc["snapshots"])
    assert trace.arguments is None  # version 1 recorded no arguments: unknown, not "none"
    # upgraded: written as version 2, it validates and holds the same counters
    write_trace(trace, tmp_path / "v2.json")
    upgraded = orjson.loads((tmp_path / "v2.json").read_bytes())
    assert upgraded["version"] == 2 and "arguments" not in upgraded
    validator.validate(upgraded)
    assert sorted(upgraded["totals"]["syscalls"]) == sorted(last["syscalls"])
    assert sorted(upgraded["totals"]["capabilities"]) == sorted(last["capabilities"])


@pytest.mark.parametrize("path", TRACES + V1_TRACES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_version_2_round_trip_validates(path, tmp_path, validator):
    trace = load_trace(path)
    out = tmp_path / "v2.json"
    write_trace(trace, out)
    doc = orjson.loads(out.read_bytes())
    assert doc["version"] == 2 and doc == trace_to_document(trace)
    validator.validate(doc)
    again = load_trace(out)
    assert np.array_equal(again.final.syscalls, trace.final.syscalls)
    assert again.final.capabilities == trace.final.capabilities
    assert [p.to_document() for p in again.snapshots] == [p.to_document() for p in trace.snapshots]
    # every row the totals hold first appears at exactly one point of the series
    firsts = [tuple(r) for p in doc["snapshots"] for r in p["new_syscalls"]]
    assert sorted(firsts) == sorted((r[0], r[1]) for r in doc["totals"]["syscalls"])


def test_version_1_kubernetes_target_is_upgraded(tmp_path, validator):
    doc = orjson.loads((V1 / "http-server.trace.json").read_bytes())
    assert doc["version"] == 1
    doc["metadata"]["target"] = {
        "kind": "kubernetes-pod",
        "name": "nim/llm-0",
        "container": "llm",
        "container_id": "abc",
        "pod_uid": "u-1",
        "gated": False,
    }
    path = tmp_path / "k.json"
    path.write_bytes(orjson.dumps(doc))
    trace = load_trace(path)
    target = trace.metadata["target"]
    assert target["container"] == {"name": "llm", "id": "abc"}
    assert target["pod"] == {"namespace": "nim", "name": "llm-0", "uid": "u-1"}
    write_trace(trace, tmp_path / "v2.json")
    validator.validate(orjson.loads((tmp_path / "v2.json").read_bytes()))


def counters(doc: dict) -> dict:
    """Where a document keeps its final counter rows: version 2's totals, version 1's
    first snapshot (the only one in the version 1 shell-nonroot)."""
    return doc["totals"] if doc["version"] == 2 else doc["snapshots"][0]


SHELL = {2: FIXTURES / "shell-nonroot.trace.json", 1: V1 / "shell-nonroot.trace.json"}
EMPTY_POINT = {"n": 0, "t": 0.0, "phase": 0, "calls": [0, 0, 0, 0], "new_syscalls": [], "new_capabilities": []}
VERSION_MUTATIONS = {
    1: {
        "version 1 with totals": lambda d: d.update(totals={}),
        "version 1 with arguments": lambda d: d.update(arguments={"recorded": [], "rows": []}),
        "version 1 with a series point": lambda d: d["snapshots"].append(copy.deepcopy(EMPTY_POINT)),
        "valid: version 1 without lost": lambda d: d.pop("lost"),
    },
    2: {
        "version 2 without totals": lambda d: d.pop("totals"),
        "version 2 with a version 1 snapshot": lambda d: d["snapshots"].append(
            {"t": 9.0, "syscalls": [], "capabilities": []}
        ),
        "point without new_syscalls": lambda d: d["snapshots"][0].pop("new_syscalls"),
        "point with 3 phases": lambda d: d["snapshots"][0].update(calls=[0, 0, 0]),
        "negative snapshots_dropped": lambda d: d.update(snapshots_dropped=-1),
        "valid: version 2 without arguments": lambda d: d.pop("arguments"),
    },
}


@pytest.mark.parametrize("version", [2, 1])
def test_our_validator_and_jsonschema_agree_on_mutations(version, validator):
    """The loader's checker and the reference implementation on the same documents."""
    ours = Schema(SCHEMA)
    base = orjson.loads(SHELL[version].read_bytes())
    assert base["version"] == version and validator.is_valid(base)
    mutations = {
        "phases as a number": lambda d: d.update(phases=5),
        "unknown arch": lambda d: d["metadata"].update(arch="SCMP_ARCH_MIPS"),
        "target as a string": lambda d: d["metadata"].update(target="runc"),
        "string boolean": lambda d: d["metadata"]["target"].update(rootfs_readonly="false"),
        "boolean as a count": lambda d: counters(d)["syscalls"][0].__setitem__(2, True),
        "negative count": lambda d: counters(d)["syscalls"][0].__setitem__(2, -1),
        "cap 41": lambda d: counters(d)["capabilities"][0].__setitem__(1, 41),
        "extra top-level key": lambda d: d.update(surprise=1),
        "row too long": lambda d: counters(d)["syscalls"][0].append(0),
        "bad timestamp": lambda d: d["metadata"].update(started_at="yesterday"),
        "valid: null hostname": lambda d: d["metadata"].update(hostname=None),
        "valid: extra metadata": lambda d: d["metadata"].update(note="hand-made"),
        **VERSION_MUTATIONS[version],
    }
    for name, mutate in mutations.items():
        doc = copy.deepcopy(base)
        mutate(doc)
        reference = validator.is_valid(doc)
        try:
            ours.check(doc)
            accepted = True
        except SchemaViolation:
            accepted = False
        assert accepted == reference == name.startswith("valid:"), name


RULE_CASES = [
    # version 2: the rows of the totals
    (
        2,
        lambda d: d["totals"]["syscalls"].append(d["totals"]["syscalls"][0]),
        "totals.syscalls[134]: a second row for phase runtime syscall 0",
    ),
    (
        2,
        lambda d: d["totals"]["syscalls"][5].__setitem__(3, d["totals"]["syscalls"][5][2] + 1),
        "totals.syscalls[5][3]: EPERM 34 is more than the 33 calls",
    ),
    (
        2,
        lambda d: d["totals"]["capabilities"].append(d["totals"]["capabilities"][0]),
        "totals.capabilities[26]: a second row for [0, 0, 93, 0]",
    ),
    (
        2,
        lambda d: d["totals"]["syscalls"].extend([[2, 165, 2**63, 0, 0, 0], [3, 165, 2**63, 0, 0, 0]]),
        "totals.syscalls: calls add up to",
    ),
    # version 1: the same mutations on its (only) snapshot
    (
        1,
        lambda d: d["snapshots"][0]["syscalls"].append(d["snapshots"][0]["syscalls"][0]),
        "snapshots[0].syscalls[133]: a second row for phase runtime syscall 0",
    ),
    (
        1,
        lambda d: d["snapshots"][0]["syscalls"][5].__setitem__(3, d["snapshots"][0]["syscalls"][5][2] + 1),
        "snapshots[0].syscalls[5][3]: EPERM 32 is more than the 31 calls",
    ),
    (
        1,
        lambda d: d["snapshots"][0]["capabilities"].append(d["snapshots"][0]["capabilities"][0]),
        "snapshots[0].capabilities[25]: a second row for",
    ),
    (
        1,
        lambda d: d["snapshots"][0]["syscalls"].extend([[2, 165, 2**63, 0, 0, 0], [3, 165, 2**63, 0, 0, 0]]),
        "snapshots[0].syscalls: calls add up to",
    ),
]


@pytest.mark.parametrize("version, mutate, message", RULE_CASES, ids=[f"v{v}-{m}" for v, _, m in RULE_CASES])
def test_rules_beyond_the_schema(tmp_path, capsys, version, mutate, message, validator):
    doc = orjson.loads(SHELL[version].read_bytes())
    assert doc["version"] == version
    mutate(doc)
    assert validator.is_valid(doc)  # the schema cannot state these rules: the loader must
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and err.count("\n") == 1


def test_version_2_series_rows_must_be_in_the_totals(tmp_path, capsys):
    doc = orjson.loads((FIXTURES / "http-server.trace.json").read_bytes())
    assert doc["version"] == 2 and len(doc["snapshots"]) > 1
    twice = copy.deepcopy(doc)
    twice["snapshots"][1]["new_syscalls"].append(twice["snapshots"][0]["new_syscalls"][0])
    (tmp_path / "dup.json").write_bytes(orjson.dumps(twice))
    assert main(["show", str(tmp_path / "dup.json")]) == 2
    err = capsys.readouterr().err
    assert "snapshots[1].new_syscalls: syscall row" in err and "is first seen twice" in err
    absent = copy.deepcopy(doc)
    absent["snapshots"][-1]["new_syscalls"].append([2, 165])  # mount: no such row in the totals
    (tmp_path / "absent.json").write_bytes(orjson.dumps(absent))
    assert main(["show", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert f"snapshots[{len(doc['snapshots']) - 1}].new_syscalls: syscall row [2, 165] is not in the totals" in err


def test_version_2_points_never_pass_the_totals(tmp_path, capsys):
    doc = orjson.loads((FIXTURES / "http-server.trace.json").read_bytes())
    startup = sum(row[2] for row in doc["totals"]["syscalls"] if row[0] == 2)
    doc["snapshots"][0]["calls"][2] = startup + 1
    (tmp_path / "t.json").write_bytes(orjson.dumps(doc))
    assert main(["show", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert f"snapshots[0].calls: {startup + 1} calls in phase startup, more than the {startup} of the totals" in err


def test_version_1_counters_never_go_down(tmp_path, capsys):
    doc = orjson.loads((V1 / "http-server.trace.json").read_bytes())
    assert doc["version"] == 1 and len(doc["snapshots"]) > 1
    assert not [row for row in doc["snapshots"][-1]["syscalls"] if row[:2] == [2, 165]]
    doc["snapshots"][0]["syscalls"].append([2, 165, 1, 0, 0, 0])  # mount, gone by the last snapshot
    (tmp_path / "t.json").write_bytes(orjson.dumps(doc))
    assert main(["show", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "snapshots[0]: " in err and "more than the" in err and "of the last snapshot" in err


def test_oversized_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_TRACE_BYTES + 1)
    with pytest.raises(InputError, match="more than the 32 MiB a trace file can be"):
        load_trace(path)


# ---------------------------------------------------------------- sums


def test_exact_and_checked_sums():
    big = np.array([[2**63, 2**63], [5, 6]], np.uint64)
    assert exact_sums(big, axis=1) == [2**64, 11]
    assert checked_sum(np.array([[1, 2], [3, 4]], np.uint64), axis=0).tolist() == [4, 6]
    with pytest.raises(OverflowError):
        checked_sum(big, axis=1)
    snap = Snapshot.empty()
    snap.syscalls[2, 165, 0] = snap.syscalls[3, 165, 0] = 2**63
    with pytest.raises(OverflowError):
        snap.calls_in(("startup", "load"))


# ---------------------------------------------------------------- the bounded series


def synthetic_counters(n: int, phase: int = 2, nrs=(0, 1, 2)) -> np.ndarray:
    counters = np.zeros((4, 512), np.uint64)
    counters[phase, list(nrs)] = n + 1
    return counters


def test_series_stays_bounded_and_keeps_every_first_sighting():
    series = SnapshotSeries(limit=16)
    nrs = []
    for n in range(1000):
        if n % 37 == 0:
            nrs.append(n // 37)
        phase = 2 if n < 300 else 3
        counters = synthetic_counters(n, phase, nrs)
        if phase == 3:
            counters[2, nrs[:9]] = 300
        series.record(float(n), counters, [], [0, 0, int(counters[2].sum()), int(counters[3].sum())])
        assert len(series.points) <= 16
    assert series.dropped + len(series.points) == 1000
    assert series.points[0].n == 0 and series.points[-1].n == 999
    phase_change = [p for p in series.points if p.n == 300]
    assert phase_change and phase_change[0].pinned  # the switch to load is never thinned out
    firsts = [row for p in series.points for row in p.new_syscalls]
    assert len(firsts) == len(set(firsts))
    assert {nr for phase, nr in firsts if phase == 2} == set(range(9))
    assert {nr for phase, nr in firsts if phase == 3} == set(nrs)
    ns = [p.n for p in series.points]
    assert ns == sorted(ns)


def test_series_encoding_matches_its_points():
    series = SnapshotSeries(limit=8)
    for n in range(50):
        series.record(float(n), synthetic_counters(n, nrs=range(n // 10 + 1)), [(2, 0, n // 10, 0)], [0, 0, n, 0])
        assert orjson.loads(series.encoded()) == [p.to_document() for p in series.points]


def test_trace_keeps_totals_and_a_point_per_checkpoint():
    trace = Trace({"arch": "SCMP_ARCH_X86_64"})
    for n in range(3):
        snap = Snapshot.empty(float(n))
        snap.syscalls[2, 0, 0] = n + 1
        trace.keep(snap)
    assert trace.final.t == 2.0 and int(trace.final.syscalls[2, 0, 0]) == 3
    assert [p.calls for p in trace.snapshots] == [(0, 0, 1, 0), (0, 0, 2, 0), (0, 0, 3, 0)]
