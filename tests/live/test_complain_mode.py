"""Complain mode end to end: a log-mode profile lets the workload run, the kernel logs what
is outside the recorded set, and generate --add-from-log extends the profile with it."""

from __future__ import annotations

import json
import subprocess

import pytest

from support.cli import tracer_cli
from support.workloads import chown_bundle, run_container
from tracer.profile.seccomp import allowed_names

pytestmark = pytest.mark.usefixtures("live")


def test_log_mode_profile_then_add_from_log(tmp_path):
    bundle = chown_bundle(tmp_path / "bundle")
    trace = tmp_path / "t.json"
    tracer_cli("record", "--runc-bundle", str(bundle), "--out", str(trace))
    tracer_cli("generate", str(trace), "--default-action", "log", "--out", str(tmp_path / "complain"))
    profile = json.loads((tmp_path / "complain/seccomp.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_LOG" and "getpriority" not in allowed_names(profile)

    enforced = chown_bundle(tmp_path / "enforced")
    tracer_cli("apply", str(tmp_path / "complain"), "--bundle", str(enforced))
    status, output = run_container(enforced, env={"PROBE": "1"})
    assert status == 0 and "probe allowed" in output  # logged, not refused

    denials = tracer_cli("denials", "--since", "2m", "--format", "json")
    assert denials.returncode == 1
    logged = {(d["syscall"], d["action"]) for d in json.loads(denials.stdout)["denials"]}
    assert ("getpriority", "log") in logged

    kernel_log = tmp_path / "dmesg.txt"
    kernel_log.write_text(subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout)
    done = tracer_cli("generate", str(trace), "--add-from-log", str(kernel_log), "--out", str(tmp_path / "extended"))
    assert "added from the seccomp log:" in done.stdout and "getpriority" in done.stdout
    assert "getpriority" in allowed_names(json.loads((tmp_path / "extended/seccomp.json").read_text()))
