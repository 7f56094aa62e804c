"""Everything after recording works offline on the committed fixture traces: no root, no BPF (as
user nobody without bcc: tests/live/test_offline_as_nobody.py)."""

from __future__ import annotations

import json

import orjson
import pytest

from support.paths import FIXTURES, REPO
from tracer.cli import main
from tracer.profile.seccomp import RUNC_HANDOVER_SYSCALLS, allowed_names
from tracer.syscalls import syscall_table
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

TRACES = sorted(FIXTURES.glob("*.trace.json"))
V1 = REPO / "tests/data/v1"  # real version 1 recordings; the fixtures are version 2


def test_at_least_three_recorded_workloads():
    assert len(TRACES) >= 3
    kinds = {load_trace(p).metadata["target"]["kind"] for p in TRACES}
    assert len(kinds) >= 2


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_show_and_generate_every_fixture(path, tmp_path, capsys):
    trace = load_trace(path)
    assert trace.metadata["complete"] is True and trace.lost_total() == 0
    assert main(["show", str(path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["syscalls"] and all(isinstance(n, int) and n > 0 for n in shown["syscalls"].values())
    assert main(["generate", str(path), "--out", str(tmp_path / "p")]) == 0
    profile = json.loads((tmp_path / "p/seccomp.json").read_text())
    names = allowed_names(profile)
    enosys = {name for rule in profile["syscalls"] if rule.get("errnoRet") == 38 for name in rule["names"]}
    assert set(shown["syscalls"]) - enosys <= names
    assert names - set(shown["syscalls"]) <= RUNC_HANDOVER_SYSCALLS
    assert names <= set(syscall_table(trace.arch).values())
    assert profile["architectures"] == [trace.arch] and profile["defaultErrnoRet"] == 1
    caps = json.loads((tmp_path / "p/capabilities.json").read_text())
    assert caps["drop"] == ["ALL"] and set(caps["add"]) == set(caps["evidence"])


def test_runc_fixture_leaves_runc_setup_out():
    trace = load_trace(FIXTURES / "python-chown.trace.json")

    summary = trace_summary(trace)
    assert {"mount", "pivot_root", "sethostname", "keyctl"} <= set(summary["phases"]["runtime"])
    assert not {"mount", "pivot_root", "sethostname", "keyctl", "umount2"} & set(summary["syscalls"])


# ---------------------------------------------------------------- bad input


def fixture_doc() -> dict:
    doc = orjson.loads((FIXTURES / "python-chown.trace.json").read_bytes())
    assert doc["version"] == 2 and len(doc["totals"]["syscalls"]) == 116
    return doc


def v1_doc() -> dict:
    doc = orjson.loads((V1 / "shell-nonroot.trace.json").read_bytes())
    assert doc["version"] == 1 and len(doc["snapshots"][-1]["syscalls"]) == 133
    return doc


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_TRACES = {
    "not-json": (lambda: b"hello, world\n", "not valid JSON"),
    "truncated": (lambda: (FIXTURES / "python-chown.trace.json").read_bytes()[:700], "truncated"),
    "empty": (lambda: b"", "is empty"),
    "other-format": (lambda: orjson.dumps({"format": "bpftrace", "version": 1}), "not a seccomp-tracer trace"),
    "wrong-version": (lambda: orjson.dumps({**fixture_doc(), "version": 99}), "version 99 is not supported"),
    "nr-out-of-range": (
        lambda: orjson.dumps(_with_row([1, 999, 1, 0, 0, 0])),
        "totals.syscalls[116][1]: 999 is above the maximum 511 (syscall number)",
    ),
    "bad-row": (lambda: orjson.dumps(_with_row([1, 2, "x"])), "totals.syscalls[116]: expected 6 items, got 3"),
    "v1-nr-out-of-range": (
        lambda: orjson.dumps(_with_row([1, 999, 1, 0, 0, 0], v1_doc())),
        "snapshots[0].syscalls[133][1]: 999 is above the maximum 511 (syscall number)",
    ),
    "v1-bad-row": (
        lambda: orjson.dumps(_with_row([1, 2, "x"], v1_doc())),
        "snapshots[0].syscalls[133]: expected 6 items, got 3",
    ),
}


def _with_row(row, doc=None):
    """The final counters with one more syscall row: version 2's totals (the fixture), or
    the last snapshot of a version 1 trace."""
    doc = fixture_doc() if doc is None else doc
    (doc["totals"] if doc["version"] == 2 else doc["snapshots"][-1])["syscalls"].append(row)
    return doc


@pytest.mark.parametrize("case", BAD_TRACES, ids=str)
@pytest.mark.parametrize("command", ["show", "generate"])
def test_bad_trace_is_one_line_exit_2_nothing_written(case, command, tmp_path, capsys):
    make, message = BAD_TRACES[case]
    path = write(tmp_path, f"{case}.json", make())
    out = tmp_path / "profile"
    args = [command, str(path)] + (["--out", str(out)] if command == "generate" else [])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err
    assert not out.exists()


def test_missing_file_and_directory(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["show", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("version", [2, 1])
def test_unknown_syscall_number_is_refused_not_written(version, tmp_path, capsys):
    # 500 is within the counters' range but no architecture names it.
    doc = _with_row([1, 500, 3, 0, 0, 0], fixture_doc() if version == 2 else v1_doc())
    path = write(tmp_path, "unknown.json", orjson.dumps(doc))
    assert main(["generate", str(path), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "syscall number 500 has no name" in err and str(path) in err
    assert not (tmp_path / "p").exists()


def test_generate_writes_atomically_over_an_existing_profile(tmp_path):
    out = tmp_path / "p"
    assert main(["generate", str(FIXTURES / "python-chown.trace.json"), "--out", str(out)]) == 0
    before = (out / "seccomp.json").read_bytes()
    bad = write(tmp_path, "bad.json", b"{")
    assert main(["generate", str(bad), "--out", str(out)]) == 2
    assert (out / "seccomp.json").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_generate_default_actions_and_manual_capability(tmp_path, capsys):
    src = str(FIXTURES / "shell-nonroot.trace.json")
    assert main(["generate", src, "--out", str(tmp_path / "log"), "--default-action", "log"]) == 0
    profile = json.loads((tmp_path / "log/seccomp.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_LOG" and "defaultErrnoRet" not in profile
    assert main(["generate", src, "--out", str(tmp_path / "k"), "--add-capability", "CAP_CHOWN"]) == 0
    caps = json.loads((tmp_path / "k/capabilities.json").read_text())
    assert caps["add"] == ["CAP_CHOWN"] and caps["evidence"]["CAP_CHOWN"]
    assert main(["generate", src, "--out", str(tmp_path / "x"), "--default-action", "maybe"]) == 2
