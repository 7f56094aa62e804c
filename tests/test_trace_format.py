"""Trace format version 2: the schema, version 1 still read, the bounded series, checked sums."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import orjson
import pytest
from conftest import FIXTURES, REPO

from tracer.arch import ARCHITECTURES
from tracer.capabilities import CAPABILITY_NAMES, HIGHEST_CAPABILITY
from tracer.cli import main
from tracer.errors import InputError
from tracer.schema import ANNOTATIONS, KEYWORDS, Schema, SchemaViolation
from tracer.trace import (
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
from tracer.trace_series import SnapshotSeries

TRACES = sorted(FIXTURES.glob("*.trace.json"))
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


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_version_1_fixtures_validate_and_load(path, validator):
    doc = orjson.loads(path.read_bytes())
    assert doc["version"] == 1
    validator.validate(doc)
    trace = load_trace(path)
    last = doc["snapshots"][-1]
    assert {(r[0], r[1]): r[2:] for r in last["syscalls"]} == {
        (p, n): trace.final.syscalls[p, n].tolist() for p, n in zip(*np.nonzero(trace.final.syscalls[:, :, 0]))}
    assert trace.final.capabilities == {tuple(r[:4]): r[4] for r in last["capabilities"]}
    assert len(trace.snapshots) == len(doc["snapshots"])


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
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
    doc = orjson.loads((FIXTURES / "http-server.trace.json").read_bytes())
    doc["metadata"]["target"] = {"kind": "kubernetes-pod", "name": "nim/llm-0", "container": "llm",
                                 "container_id": "abc", "pod_uid": "u-1", "gated": False}
    path = tmp_path / "k.json"
    path.write_bytes(orjson.dumps(doc))
    trace = load_trace(path)
    target = trace.metadata["target"]
    assert target["container"] == {"name": "llm", "id": "abc"}
    assert target["pod"] == {"namespace": "nim", "name": "llm-0", "uid": "u-1"}
    write_trace(trace, tmp_path / "v2.json")
    validator.validate(orjson.loads((tmp_path / "v2.json").read_bytes()))


def test_our_validator_and_jsonschema_agree_on_mutations(validator):
    """The loader's checker and the reference implementation on the same documents."""
    ours = Schema(SCHEMA)
    base = orjson.loads((FIXTURES / "shell-nonroot.trace.json").read_bytes())
    mutations = {
        "phases as a number": lambda d: d.update(phases=5),
        "unknown arch": lambda d: d["metadata"].update(arch="SCMP_ARCH_MIPS"),
        "target as a string": lambda d: d["metadata"].update(target="runc"),
        "string boolean": lambda d: d["metadata"]["target"].update(rootfs_readonly="false"),
        "boolean as a count": lambda d: d["snapshots"][0]["syscalls"][0].__setitem__(2, True),
        "negative count": lambda d: d["snapshots"][0]["syscalls"][0].__setitem__(2, -1),
        "cap 41": lambda d: d["snapshots"][0]["capabilities"][0].__setitem__(1, 41),
        "extra top-level key": lambda d: d.update(surprise=1),
        "row too long": lambda d: d["snapshots"][0]["syscalls"][0].append(0),
        "version 1 with totals": lambda d: d.update(totals={}),
        "bad timestamp": lambda d: d["metadata"].update(started_at="yesterday"),
        "valid: null hostname": lambda d: d["metadata"].update(hostname=None),
        "valid: extra metadata": lambda d: d["metadata"].update(note="hand-made"),
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


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["snapshots"][0]["syscalls"].append(d["snapshots"][0]["syscalls"][0]),
     "snapshots[0].syscalls[133]: a second row for phase runtime syscall 0"),
    (lambda d: d["snapshots"][0]["syscalls"][5].__setitem__(3, d["snapshots"][0]["syscalls"][5][2] + 1),
     "snapshots[0].syscalls[5][3]: EPERM"),
    (lambda d: d["snapshots"][0]["capabilities"].append(d["snapshots"][0]["capabilities"][0]),
     "a second row for"),
    (lambda d: d["snapshots"][0]["syscalls"].extend([[2, 165, 2**63, 0, 0, 0], [3, 165, 2**63, 0, 0, 0]]),
     "snapshots[0].syscalls: calls add up to"),
])
def test_rules_beyond_the_schema(tmp_path, capsys, mutate, message):
    doc = orjson.loads((FIXTURES / "shell-nonroot.trace.json").read_bytes())
    mutate(doc)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and err.count("\n") == 1


def test_version_2_series_rows_must_be_in_the_totals(tmp_path, capsys):
    trace = load_trace(FIXTURES / "mini-nim.trace.json")
    doc = trace_to_document(trace)
    doc["snapshots"][1]["new_syscalls"].append(doc["snapshots"][0]["new_syscalls"][0])
    (tmp_path / "dup.json").write_bytes(orjson.dumps(doc))
    assert main(["show", str(tmp_path / "dup.json")]) == 2
    err = capsys.readouterr().err
    assert "snapshots[1].new_syscalls: syscall row" in err and "is first seen twice" in err


def test_version_1_counters_never_go_down(tmp_path, capsys):
    doc = orjson.loads((FIXTURES / "mini-nim.trace.json").read_bytes())
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
