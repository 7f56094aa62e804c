"""merge, generate --min-runs, generate on incomplete recordings, and diff: offline, from the
fixtures and small hand-made traces and profiles."""

from __future__ import annotations

import json
import shutil

import jsonschema
import orjson
import pytest

from support.paths import FIXTURES, REPO
from tracer.capabilities import CAPABILITY_NAMES
from tracer.cli import main
from tracer.syscalls import syscall_number
from tracer.trace.arguments import RECORDED_SYSCALLS
from tracer.trace.format import CAP_OUTCOMES, PHASES, Snapshot, Trace, load_trace, write_trace

ARCH = "SCMP_ARCH_X86_64"
V1 = REPO / "tests/data/v1"  # real version 1 recordings; the fixtures are version 2
SCHEMA = json.loads((REPO / "docs/trace.schema.json").read_text())
BASE_CALLS = {"read": 10, "write": 10, "openat": 5, "close": 5, "mmap": 3, "exit_group": 1}


def make_trace(
    path,
    calls=None,
    capabilities=(),
    *,
    started_at="2026-11-01T10:00:00.000Z",
    hostname="node-a",
    target=None,
    **metadata,
):
    """A small version 2 trace: calls {syscall: count} in phase startup, capabilities
    [(capability, syscall, outcome, count)] in startup."""
    snap = Snapshot.empty(5.0)
    for name, count in (calls if calls is not None else BASE_CALLS).items():
        snap.syscalls[PHASES.index("startup"), syscall_number(ARCH, name), 0] = count
    for cap, syscall, outcome, count in capabilities:
        key = (
            PHASES.index("startup"),
            CAPABILITY_NAMES.index(cap),
            syscall_number(ARCH, syscall),
            CAP_OUTCOMES.index(outcome),
        )
        snap.capabilities[key] = count
    meta = {
        "tool": "seccomp-tracer",
        "arch": ARCH,
        "hostname": hostname,
        "started_at": started_at,
        "complete": True,
        "target": target or {"kind": "runc-bundle", "name": "nim", "bundle": "/srv/nim/bundle"},
        **metadata,
    }
    write_trace(Trace(meta, [snap]), path)
    return path


def merged_doc(path) -> dict:
    doc = orjson.loads(path.read_bytes())
    jsonschema.validate(doc, SCHEMA)
    return doc


# ---------------------------------------------------------------- merge


def test_capability_runs_count_use_and_calls_that_failed_without(tmp_path, capsys):
    a = make_trace(tmp_path / "a.json", {**BASE_CALLS, "chown": 1}, [("CAP_CHOWN", "chown", "granted", 1)])
    b = make_trace(
        tmp_path / "b.json",
        BASE_CALLS,
        [("CAP_DAC_OVERRIDE", "openat", "denied_failed", 2), ("CAP_SYS_ADMIN", "mmap", "granted", 3)],  # advisory
        started_at="2026-11-01T11:00:00.000Z",
    )
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m.json")]) == 0
    runs = merged_doc(tmp_path / "m.json")["runs"]
    assert runs["count"] == 2
    assert runs["capabilities"] == {"CAP_CHOWN": 1, "CAP_DAC_OVERRIDE": 1}
    assert runs["syscalls"]["chown"] == 1 and runs["syscalls"]["read"] == 2


def test_min_runs_drops_a_syscall_and_the_capability_only_it_needed(tmp_path, capsys):
    rare = make_trace(
        tmp_path / "rare.json",
        {**BASE_CALLS, "chown": 1},
        [("CAP_CHOWN", "chown", "granted", 1), ("CAP_FOWNER", "openat", "granted", 1)],
    )
    others = [
        make_trace(
            tmp_path / f"o{i}.json",
            BASE_CALLS,
            [("CAP_FOWNER", "openat", "granted", 1)],
            started_at=f"2026-11-01T1{i}:00:00.000Z",
        )
        for i in (1, 2)
    ]
    merged = tmp_path / "m.json"
    assert main(["merge", str(rare), *map(str, others), "--out", str(merged)]) == 0
    assert main(["generate", str(merged), "--out", str(tmp_path / "all")]) == 0
    assert main(["generate", str(merged), "--out", str(tmp_path / "common"), "--min-runs", "2"]) == 0
    all_caps = json.loads((tmp_path / "all/capabilities.json").read_text())
    common = json.loads((tmp_path / "common/capabilities.json").read_text())
    common_seccomp = json.loads((tmp_path / "common/seccomp.json").read_text())
    assert all_caps["add"] == ["CAP_CHOWN", "CAP_FOWNER"]
    assert "chown" not in common_seccomp["syscalls"][0]["names"] and "openat" in common_seccomp["syscalls"][0]["names"]
    assert common["add"] == ["CAP_FOWNER"] and "CAP_CHOWN" not in common["evidence"]
    assert "left out (in fewer than 2 runs): chown" in capsys.readouterr().out


def test_the_same_recording_twice_counts_once(tmp_path, capsys):
    a = make_trace(tmp_path / "a.json")
    copy = tmp_path / "copy-of-a.json"
    shutil.copy(a, copy)
    assert main(["merge", str(a), str(copy), "--out", str(tmp_path / "m.json")]) == 0
    err = capsys.readouterr().err
    assert f"warning: {copy} is the same recording as {a}" in err and "counted once" in err
    doc = merged_doc(tmp_path / "m.json")
    assert doc["runs"]["count"] == 1 and len(doc["metadata"]["merged_from"]) == 1
    assert doc["totals"]["syscalls"] == orjson.loads(a.read_bytes())["totals"]["syscalls"]  # not doubled


def test_a_merged_trace_and_one_of_its_recordings(tmp_path, capsys):
    a = make_trace(tmp_path / "a.json")
    b = make_trace(tmp_path / "b.json", started_at="2026-11-01T11:00:00.000Z")
    c = make_trace(tmp_path / "c.json", started_at="2026-11-01T12:00:00.000Z")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "ab.json")]) == 0
    assert main(["merge", str(tmp_path / "ab.json"), str(b), "--out", str(tmp_path / "abb.json")]) == 0
    assert merged_doc(tmp_path / "abb.json")["runs"]["count"] == 2
    assert main(["merge", str(tmp_path / "ab.json"), str(c), "--out", str(tmp_path / "abc.json")]) == 0
    assert merged_doc(tmp_path / "abc.json")["runs"]["count"] == 3
    capsys.readouterr()
    # b and c merged elsewhere overlap ab in b only: no honest count, refuse
    assert main(["merge", str(b), str(c), "--out", str(tmp_path / "bc.json")]) == 0
    assert main(["merge", str(tmp_path / "ab.json"), str(tmp_path / "bc.json"), "--out", str(tmp_path / "x.json")]) == 2
    assert "merge the original recordings instead" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_different_workloads_merge_with_a_warning(tmp_path, capsys):
    pod = {"kind": "kubernetes-pod", "name": "nim/llm-0", "pod": {"namespace": "nim", "name": "llm-0"}}
    replica_0 = make_trace(
        tmp_path / "r0.json", target={**pod, "container": {"name": "llm", "image": "nvcr.io/nim/llm:1.2"}}
    )
    replica_1 = make_trace(
        tmp_path / "r1.json",
        started_at="2026-11-01T11:00:00.000Z",
        target={**pod, "name": "nim/llm-1", "container": {"name": "llm", "image": "nvcr.io/nim/llm:1.2"}},
    )
    upgraded = make_trace(
        tmp_path / "up.json",
        started_at="2026-11-01T12:00:00.000Z",
        target={**pod, "container": {"name": "llm", "image": "nvcr.io/nim/llm:1.3"}},
    )
    assert main(["merge", str(replica_0), str(replica_1), "--out", str(tmp_path / "m.json")]) == 0
    assert "warning" not in capsys.readouterr().err  # replicas: different pods, one image
    assert main(["merge", str(replica_0), str(upgraded), "--out", str(tmp_path / "m2.json")]) == 0
    err = capsys.readouterr().err
    assert "different workloads: image nvcr.io/nim/llm:1.2" in err and "image nvcr.io/nim/llm:1.3" in err
    assert main(["merge", *map(str, sorted(FIXTURES.glob("*.trace.json"))[:2]), "--out", str(tmp_path / "f.json")]) == 0
    assert "different workloads" in capsys.readouterr().err


def test_sums_never_wrap_around(tmp_path, capsys):
    half = 2**63
    a = make_trace(tmp_path / "a.json", {"mount": half})
    b = make_trace(tmp_path / "b.json", {"mount": half}, started_at="2026-11-01T11:00:00.000Z")
    out = tmp_path / "m.json"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(b) in err and "passes 2^64-1" in err
    assert not out.exists()
    assert main(["generate", str(a), str(b), "--out", str(tmp_path / "p")]) == 2
    assert not (tmp_path / "p").exists()
    c = make_trace(tmp_path / "c.json", {"mount": half - 1}, started_at="2026-11-01T12:00:00.000Z")
    assert main(["merge", str(a), str(c), "--out", str(out)]) == 0
    assert merged_doc(out)["totals"]["syscalls"][0][2] == 2**64 - 1


@pytest.mark.parametrize("inputs", ["fixtures", "fixtures and v1", "v1"])
def test_merged_fixtures_are_a_valid_version_2_trace(inputs, tmp_path, capsys):
    """Version 2 fixtures, version 1 recordings, or both: always a valid version 2 trace."""
    out = tmp_path / "m.json"
    traces = (sorted(FIXTURES.glob("*.trace.json")) if "fixtures" in inputs else []) + (
        sorted(V1.glob("*.trace.json")) if "v1" in inputs else []
    )
    versions = {orjson.loads(path.read_bytes())["version"] for path in traces}
    assert versions == ({2} if inputs == "fixtures" else {1} if inputs == "v1" else {1, 2})
    assert main(["merge", *map(str, traces), "--out", str(out)]) == 0
    doc = merged_doc(out)
    assert doc["version"] == 2 and doc["runs"]["count"] == len(traces)
    merged = load_trace(out)
    assert merged.runs["count"] == len(traces)
    assert (merged.final.syscalls == sum(load_trace(path).final.syscalls for path in traces)).all()
    # a version 1 input recorded no arguments: in the merge they are unknown for every syscall
    recorded = list(RECORDED_SYSCALLS) if versions == {2} else []
    assert doc["arguments"]["recorded"] == recorded and bool(doc["arguments"]["rows"]) == bool(recorded)


# ---------------------------------------------------------------- incomplete recordings


@pytest.mark.parametrize(
    "metadata, reason",
    [
        ({"complete": False, "stopped_by": "SIGKILL"}, "incomplete (complete: false, stopped by SIGKILL)"),
        ({"startup_missed": True}, "missed the workload's start-up (startup_missed: true)"),
    ],
)
def test_generate_refuses_an_incomplete_recording(tmp_path, capsys, metadata, reason):
    trace = make_trace(tmp_path / "t.json", **metadata)
    out = tmp_path / "p"
    assert main(["generate", str(trace), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(trace) in err and reason in err and "--allow-incomplete" in err
    assert not out.exists()
    assert main(["generate", str(trace), "--out", str(out), "--allow-incomplete"]) == 0
    assert "warning: " in capsys.readouterr().err and (out / "seccomp.json").exists()


def test_a_merge_with_an_incomplete_recording_is_incomplete(tmp_path, capsys):
    a = make_trace(tmp_path / "a.json")
    b = make_trace(tmp_path / "b.json", started_at="2026-11-01T11:00:00.000Z", complete=False)
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m.json")]) == 0
    assert main(["generate", str(tmp_path / "m.json"), "--out", str(tmp_path / "p")]) == 2
    assert "complete: false" in capsys.readouterr().err


# ---------------------------------------------------------------- diff


def profile_dir(tmp_path, name, trace) -> str:
    assert main(["generate", str(trace), "--out", str(tmp_path / name)]) == 0
    return str(tmp_path / name)


def test_diff_profile_against_a_trace_that_needs_more(tmp_path, capsys):
    old = profile_dir(tmp_path, "old", make_trace(tmp_path / "a.json"))
    new = make_trace(
        tmp_path / "b.json",
        {**BASE_CALLS, "mount": 1},
        [("CAP_SYS_ADMIN", "mount", "granted", 1)],
        started_at="2026-11-01T11:00:00.000Z",
    )
    capsys.readouterr()
    assert main(["diff", old, str(new), "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["syscalls"]["added"] == ["mount"] and result["capabilities"]["added"] == ["CAP_SYS_ADMIN"]
    assert main(["diff", str(new), old]) == 0  # the old one needs less: nothing to add
    assert "- syscall mount" in capsys.readouterr().out


def test_diff_says_when_the_image_changed(tmp_path, capsys):
    """A pod's trace names its image by digest (from CRI): diff shows an upgrade, not only its syscalls."""
    pod = {"kind": "kubernetes-pod", "name": "nim/llm-0", "pod": {"namespace": "nim", "name": "llm-0"}}
    old_image = {"name": "llm", "image": "nvcr.io/nim/llm:1.2", "image_digest": f"nvcr.io/nim/llm@sha256:{'a' * 64}"}
    new_image = {**old_image, "image": "nvcr.io/nim/llm:1.3", "image_digest": f"nvcr.io/nim/llm@sha256:{'b' * 64}"}
    old = profile_dir(tmp_path, "old", make_trace(tmp_path / "a.json", target={**pod, "container": old_image}))
    same = make_trace(
        tmp_path / "same.json", started_at="2026-11-01T11:00:00.000Z", target={**pod, "container": old_image}
    )
    upgraded = make_trace(
        tmp_path / "up.json", started_at="2026-11-01T12:00:00.000Z", target={**pod, "container": new_image}
    )
    capsys.readouterr()
    assert main(["diff", old, str(upgraded)]) == 0  # the same syscalls: nothing more needed
    assert f"~ image {old_image['image_digest']} -> {new_image['image_digest']}" in capsys.readouterr().out
    assert main(["diff", old, str(upgraded), "--format", "json"]) == 0
    images = json.loads(capsys.readouterr().out)["images"]
    assert images == {"old": [old_image["image_digest"]], "new": [new_image["image_digest"]], "changed": True}
    assert main(["diff", old, str(same)]) == 0
    assert "~ image" not in capsys.readouterr().out
    assert main(["diff", f"{old}/seccomp.json", str(upgraded), "--format", "json"]) == 0  # no image on one side
    assert json.loads(capsys.readouterr().out)["images"]["changed"] is False


def test_diff_of_two_seccomp_files(tmp_path, capsys):
    old = profile_dir(tmp_path, "old", FIXTURES / "shell-nonroot.trace.json")
    new = profile_dir(tmp_path, "new", FIXTURES / "python-chown.trace.json")
    capsys.readouterr()
    code = main(["diff", f"{old}/seccomp.json", f"{new}/seccomp.json", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["syscalls"]["added"] else 0) and result["capabilities"] == {"added": [], "removed": []}
    old_names = set(json.loads((tmp_path / "old/seccomp.json").read_text())["syscalls"][0]["names"])
    new_names = set(json.loads((tmp_path / "new/seccomp.json").read_text())["syscalls"][0]["names"])
    assert result["syscalls"]["added"] == sorted(new_names - old_names)


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (
            lambda p: p["syscalls"][0].update(names="mount"),
            'syscalls[0].names: expected a list, got the string "mount"',
        ),
        (lambda p: p.update(defaultAction="SCMP_ACT_BOGUS"), "defaultAction: expected one of"),
        (lambda p: p.update(architectures=["x86_64"]), "architectures[0]: expected one of"),
        (
            lambda p: p["syscalls"][0]["names"].append("not_a_syscall"),
            "'not_a_syscall' is not a syscall libseccomp knows",
        ),
    ],
)
def test_diff_refuses_a_bad_seccomp_file(tmp_path, capsys, mutate, problem):
    profile = json.loads((REPO / "profiles/mini-nim/seccomp.json").read_text())
    mutate(profile)
    bad = tmp_path / "seccomp.json"
    bad.write_text(json.dumps(profile))
    assert main(["diff", str(bad), str(FIXTURES / "mini-nim.trace.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and problem in err
