"""Record a real runc container, generate its profile, and run it again under that profile."""

from __future__ import annotations

import json
import uuid

import pytest

from support.cli import tracer_cli
from support.workloads import RUNC_SETUP, THREADED_UID_1000, chown_bundle, run_container, trace_names
from tracer import runc
from tracer.embedded.bundle import make_bundle
from tracer.profile.seccomp import RUNC_HANDOVER_SYSCALLS, allowed_names
from tracer.trace.format import PHASES, load_trace

CAP_DAC_OVERRIDE = 1


@pytest.fixture(scope="module")
def recorded(live, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runc")
    bundle = chown_bundle(workdir / "bundle")
    trace_path = workdir / "chown.trace.json"
    done = tracer_cli("record", "--runc-bundle", str(bundle), "--out", str(trace_path))
    assert done.returncode == 0, done.stderr
    profile = workdir / "profile"
    tracer_cli("generate", str(trace_path), "--out", str(profile))
    return workdir, bundle, load_trace(trace_path), profile


def test_runtime_setup_is_recorded_apart_and_left_out_of_the_profile(recorded):
    _, _, trace, profile = recorded
    runtime = set(trace_names(trace, "runtime"))
    assert {"mount", "pivot_root", "sethostname", "capset"} <= runtime, runtime
    allowed = allowed_names(json.loads((profile / "seccomp.json").read_text()))
    assert not allowed & RUNC_SETUP
    # runc's hand-over after the filter is installed runs under the profile: it must be in it.
    assert {"execve", "write", "getpid"} <= allowed
    assert trace.metadata["workload_started"] is True
    # What runc did under the filter is the measured hand-over set (seccomp.py).
    handover = set(trace_names(trace, "handover"))
    assert {"execve"} & handover == set() and handover <= RUNC_HANDOVER_SYSCALLS, handover - RUNC_HANDOVER_SYSCALLS
    # ... clone3 answered ENOSYS (glibc falls back to clone, whose flags the profile checks).
    profile_doc = json.loads((profile / "seccomp.json").read_text())
    assert RUNC_HANDOVER_SYSCALLS - {"clone3"} <= allowed
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in profile_doc["syscalls"]


def test_capability_needed_is_added_and_unused_ones_are_not(recorded):
    _, _, _, profile = recorded
    caps = json.loads((profile / "capabilities.json").read_text())
    assert "CAP_CHOWN" in caps["add"]
    assert caps["drop"] == ["ALL"]
    assert {e["syscall"] for e in caps["evidence"]["CAP_CHOWN"]} & {"chown", "fchownat"}
    assert "CAP_NET_RAW" not in caps["add"] and "CAP_KILL" not in caps["add"]


def test_workload_runs_under_its_profile_and_anything_else_gets_eperm(recorded, tmp_path):
    _, _, _, profile = recorded
    bundle = chown_bundle(tmp_path / "enforced")
    tracer_cli("apply", str(profile), "--bundle", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    assert config["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert config["process"]["capabilities"]["effective"] == ["CAP_CHOWN"]
    status, output = run_container(bundle, env={"PROBE": "1"})
    assert status == 0, output
    assert "owner 1234" in output
    assert "probe errno 1" in output  # getpriority was never recorded: EPERM


def test_created_container_is_recorded_from_start(live, tmp_path):
    trace = record_created_container(chown_bundle(tmp_path / "bundle"), tmp_path / "created.trace.json")
    names = set(trace_names(trace, "startup"))
    assert {"execve", "chown", "openat"} <= names or {"execve", "fchownat", "openat"} <= names
    assert not names & RUNC_SETUP
    assert trace.metadata["target"]["kind"] == "runc"


def record_created_container(bundle, trace_path):
    """`runc create` a container from BUNDLE, record it with --runc (which starts it), delete it."""
    container = f"t-{uuid.uuid4().hex[:8]}"
    runc.become_subreaper()
    runc.create(bundle, container)
    try:
        done = tracer_cli("record", "--runc", container, "--out", str(trace_path))
        assert done.returncode == 0, done.stderr
    finally:
        runc.delete(container, force=True)
    return load_trace(trace_path)


def test_created_uid_1000_container_gets_no_capability_from_runc_hand_over(live, tmp_path):
    bundle = make_bundle(tmp_path / "bundle", ["/usr/bin/python3", "-c", THREADED_UID_1000], uid=1000, gid=1000)
    trace = record_created_container(bundle, tmp_path / "created.trace.json")
    assert trace.metadata["target"]["gated"] is True and "startup_missed" not in trace.metadata
    assert "execve" in set(trace_names(trace, "startup"))
    assert set(trace_names(trace, "handover")) <= RUNC_HANDOVER_SYSCALLS
    # runc's init reopening its exec fifo checks DAC_OVERRIDE: the hand-over's, not the workload's.
    workload_checks = {
        cap
        for (phase, cap, _nr, _outcome), n in trace.final.capabilities.items()
        if n and PHASES[phase] in ("startup", "load")
    }
    assert CAP_DAC_OVERRIDE not in workload_checks, workload_checks
    profile = tmp_path / "profile"
    tracer_cli("generate", str(trace.source), "--out", str(profile))
    caps = json.loads((profile / "capabilities.json").read_text())
    assert caps["add"] == [], caps


def test_running_container_is_marked_startup_missed(live, tmp_path):
    bundle = make_bundle(tmp_path / "bundle", ["/usr/bin/python3", "-c", "import time; time.sleep(2)"])
    container = f"t-{uuid.uuid4().hex[:8]}"
    runc.become_subreaper()
    runc.create(bundle, container)
    try:
        runc.start(container)
        trace_path = tmp_path / "running.trace.json"
        done = tracer_cli("record", "--runc", container, "--out", str(trace_path))
        assert done.returncode == 1, done.stderr
        assert "start-up missed" in done.stderr
    finally:
        runc.delete(container, force=True)
    trace = load_trace(trace_path)
    assert trace.metadata["startup_missed"] is True and trace.metadata["target"]["gated"] is False
    refused = tracer_cli("generate", str(trace_path), "--out", str(tmp_path / "profile"), check=False)
    assert refused.returncode == 2 and "startup_missed" in refused.stderr
