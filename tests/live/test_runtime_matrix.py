"""The same recording on each runc a node may run: Debian's 1.1.5 and the current upstream
releases. Each records the chown workload under a filter (`--runc-bundle`), generates its
profile and runs it under that profile with the same runc."""

from __future__ import annotations

import json
import os

import pytest

from support.cli import tracer_cli
from support.runtimes import BUILT_RUNC, runtime
from support.workloads import chown_bundle, run_container, trace_names
from tracer.profile.seccomp import RUNC_HANDOVER_SYSCALLS, allowed_names
from tracer.trace.format import load_trace


@pytest.fixture(scope="module", params=["debian", *BUILT_RUNC])
def recorded(request, live, tmp_path_factory):
    chosen = runtime(request.param)
    env = {**os.environ, "PATH": chosen.path_env(os.environ["PATH"])}
    workdir = tmp_path_factory.mktemp(request.param)
    bundle = chown_bundle(workdir / "bundle")
    trace_path = workdir / "chown.trace.json"
    done = tracer_cli("record", "--runc-bundle", str(bundle), "--out", str(trace_path), env=env)
    assert done.returncode == 0, done.stderr
    profile = workdir / "profile"
    tracer_cli("generate", str(trace_path), "--out", str(profile), env=env)
    return chosen, load_trace(trace_path), profile


def test_the_trace_names_the_runc_that_ran_the_container(recorded):
    chosen, trace, _ = recorded
    assert trace.metadata["target"]["runtime"] == {"name": "runc", "version": chosen.version}


def test_the_profile_runs_the_workload_under_the_same_runc(recorded, tmp_path, monkeypatch):
    chosen, _, profile = recorded
    monkeypatch.setenv("PATH", chosen.path_env(os.environ["PATH"]))  # tracer.runc runs the runc on PATH
    bundle = chown_bundle(tmp_path / "enforced")
    tracer_cli("apply", str(profile), "--bundle", str(bundle))
    status, output = run_container(bundle, env={"PROBE": "1"})
    assert status == 0, output
    assert "owner 1234" in output and "probe errno 1" in output


def test_runc_1_2_and_later_hand_over_with_calls_the_1_1_5_set_lacks(recorded):
    """Measured: runc 1.2.8 and 1.5.3 open through openat2 and stat through statx after the
    filter is installed; a hand-over set measured on 1.1.5 does not carry over."""
    chosen, trace, profile = recorded
    handover = set(trace_names(trace, "handover"))
    if chosen.name == "debian":
        assert handover <= RUNC_HANDOVER_SYSCALLS, handover - RUNC_HANDOVER_SYSCALLS
    else:
        assert {"openat2", "statx"} <= handover - RUNC_HANDOVER_SYSCALLS, handover
        assert {"openat2", "statx"} <= allowed_names(json.loads((profile / "seccomp.json").read_text()))
