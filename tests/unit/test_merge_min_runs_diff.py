"""`tracer merge`, `generate --min-runs` and `tracer diff`, offline on the committed fixture
traces and on small profile directories made here."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from support.paths import FIXTURES
from tracer.cli import main
from tracer.profile.merge import syscalls_seen
from tracer.profile.seccomp import allowed_names
from tracer.trace.format import load_trace

HTTP = FIXTURES / "http-server.trace.json"
SHELL = FIXTURES / "shell-nonroot.trace.json"
CHOWN = FIXTURES / "python-chown.trace.json"


def run_json(args: list[str], capsys) -> tuple[int, dict]:
    code = main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def merged(tmp_path, capsys, *traces) -> tuple[dict, object]:
    out = tmp_path / "merged.trace.json"
    code, summary = run_json(["merge", *map(str, traces), "--out", str(out)], capsys)
    assert code == 0
    return summary, out


# --- merge -----------------------------------------------------------------------------


def test_merge_is_the_union_of_the_runs_with_how_many_runs_each_syscall_was_in(tmp_path, capsys):
    summary, out = merged(tmp_path, capsys, HTTP, SHELL)
    http, shell = set(syscalls_seen(load_trace(HTTP))), set(syscalls_seen(load_trace(SHELL)))
    assert http & shell and http - shell and shell - http  # the fixtures overlap and differ
    assert summary["runs"] == 2
    assert set(summary["syscalls"]) == http | shell
    assert {name for name, runs in summary["syscalls"].items() if runs == 2} == http & shell
    assert set(summary["rare"]) == (http | shell) - (http & shell)
    assert load_trace(out).runs["syscalls"] == summary["syscalls"]


def test_merged_counters_are_the_sum_of_the_runs(tmp_path, capsys):
    _, out = merged(tmp_path, capsys, HTTP, SHELL)
    total = load_trace(HTTP).calls_by_nr() + load_trace(SHELL).calls_by_nr()
    assert np.array_equal(load_trace(out).calls_by_nr(), total) and total.sum() > 0


def test_a_merged_trace_merges_again_counting_its_runs(tmp_path, capsys):
    _, first = merged(tmp_path, capsys, HTTP, SHELL)
    again = tmp_path / "again.trace.json"
    code, summary = run_json(["merge", str(first), str(CHOWN), "--out", str(again)], capsys)
    assert code == 0 and summary["runs"] == 3
    http, shell, chown = (set(syscalls_seen(load_trace(path))) for path in (HTTP, SHELL, CHOWN))
    assert {summary["syscalls"][name] for name in http & shell & chown} == {3}
    assert {summary["syscalls"][name] for name in chown - http - shell} == {1}
    # A run that is already inside the merged trace counts once (and is warned about).
    code, summary = run_json(["merge", str(first), str(HTTP), "--out", str(tmp_path / "twice.trace.json")], capsys)
    assert code == 0 and summary["runs"] == 2


def test_the_same_run_twice_counts_once_and_has_nothing_rare(tmp_path, capsys):
    summary, _ = merged(tmp_path, capsys, SHELL, SHELL)
    assert summary["runs"] == 1 and summary["rare"] == [] and set(summary["syscalls"].values()) == {1}


def test_traces_of_different_architectures_do_not_merge(tmp_path, capsys):
    doc = orjson.loads(SHELL.read_bytes())
    doc["metadata"]["arch"] = "SCMP_ARCH_AARCH64"
    arm = tmp_path / "arm.trace.json"
    arm.write_bytes(orjson.dumps(doc))
    out = tmp_path / "m.trace.json"
    assert main(["merge", str(HTTP), str(arm), "--out", str(out)]) == 2
    assert "architecture SCMP_ARCH_AARCH64 differs from SCMP_ARCH_X86_64" in capsys.readouterr().err
    assert not out.exists()


# --- generate --min-runs ---------------------------------------------------------------


def test_min_runs_keeps_only_what_enough_runs_made(tmp_path, capsys):
    summary, out = merged(tmp_path, capsys, HTTP, SHELL)
    code, every = run_json(["generate", str(out), "--out", str(tmp_path / "all")], capsys)
    assert code == 0 and every["left_out"] == []
    code, common = run_json(["generate", str(out), "--out", str(tmp_path / "common"), "--min-runs", "2"], capsys)
    assert code == 0
    in_one_run = {name for name, runs in summary["syscalls"].items() if runs < 2}
    assert common["left_out"] and set(common["left_out"]) == in_one_run & set(every["allowed"])
    assert set(common["allowed"]) == set(every["allowed"]) - in_one_run
    written = allowed_names(json.loads((tmp_path / "common/seccomp.json").read_text()))
    assert written == set(common["allowed"]) and not written & in_one_run


def test_min_runs_text_names_what_was_left_out(tmp_path, capsys):
    _, out = merged(tmp_path, capsys, HTTP, SHELL)
    assert main(["generate", str(out), "--out", str(tmp_path / "p"), "--min-runs", "2"]) == 0
    text = capsys.readouterr().out
    assert "left out (in fewer than 2 runs): " in text and "accept4" in text  # the server's, not the shell's


def test_min_runs_below_one_is_a_usage_error(tmp_path, capsys):
    assert main(["generate", str(HTTP), "--out", str(tmp_path / "p"), "--min-runs", "0"]) == 2
    assert "--min-runs" in capsys.readouterr().err and not (tmp_path / "p").exists()


# --- diff ------------------------------------------------------------------------------


@pytest.fixture
def profiles(tmp_path, capsys) -> dict:
    """Profile directories: one per fixture, and the shell's with CAP_CHOWN added by hand."""
    made = {}
    for name, trace, extra in (
        ("http", HTTP, []),
        ("shell", SHELL, []),
        ("shell+chown", SHELL, ["--add-capability", "CHOWN"]),
    ):
        assert main(["generate", str(trace), "--out", str(tmp_path / name), *extra]) == 0
        made[name] = tmp_path / name
    capsys.readouterr()
    return made


def allowed(directory) -> set[str]:
    return allowed_names(json.loads((directory / "seccomp.json").read_text()))


def test_diff_of_two_profiles_lists_what_was_added_and_removed(profiles, capsys):
    code, result = run_json(["diff", str(profiles["shell"]), str(profiles["http"])], capsys)
    old, new = allowed(profiles["shell"]), allowed(profiles["http"])
    assert code == 1 and result["needs_more"] is True
    assert result["syscalls"] == {"added": sorted(new - old), "removed": sorted(old - new)}
    assert result["syscalls"]["added"] and result["syscalls"]["removed"]


def test_diff_text_marks_each_change_and_gives_the_verdict(profiles, capsys):
    assert main(["diff", str(profiles["shell"]), str(profiles["shell+chown"])]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"--- {profiles['shell']}",
        f"+++ {profiles['shell+chown']}",
        "+ capability CAP_CHOWN",
        "NEW needs more than OLD grants",
    ]


def test_a_profile_that_shrank_needs_nothing_more(profiles, capsys):
    code, result = run_json(["diff", str(profiles["shell+chown"]), str(profiles["shell"])], capsys)
    assert code == 0 and result["needs_more"] is False
    assert result["capabilities"] == {"added": [], "removed": ["CAP_CHOWN"]} and result["syscalls"]["added"] == []


def test_a_trace_needs_nothing_beyond_the_profile_made_from_it(profiles, capsys):
    code, result = run_json(["diff", str(profiles["http"]), str(HTTP)], capsys)
    assert code == 0 and result["syscalls"]["added"] == [] and result["capabilities"]["added"] == []


def test_a_seccomp_json_file_compares_like_its_directory(profiles, capsys):
    code_file, by_file = run_json(["diff", str(profiles["shell"] / "seccomp.json"), str(profiles["http"])], capsys)
    code_dir, by_dir = run_json(["diff", str(profiles["shell"]), str(profiles["http"])], capsys)
    assert code_file == code_dir == 1 and by_file["syscalls"] == by_dir["syscalls"]


def test_a_new_trace_that_needs_more_fails_the_check(profiles, capsys):
    code, result = run_json(["diff", str(profiles["shell"]), str(CHOWN)], capsys)
    assert code == 1 and result["needs_more"]
    assert result["capabilities"]["added"] == ["CAP_CHOWN"]  # the chown fixture used it


def test_diff_of_a_missing_input_exits_2(profiles, tmp_path, capsys):
    assert main(["diff", str(profiles["shell"]), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and err.count("\n") == 1
