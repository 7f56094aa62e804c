"""The committed mini-NIM profile still covers a fresh recording, and holds under load."""

from __future__ import annotations

import json

import pytest
from demo import DEFAULT_CAPABILITIES, PROFILE, READY_URL, load_command, record_mininim

from support.cli import tracer_cli
from support.paths import REPO
from tracer.embedded.bundle import mininim_bundle
from tracer.network.netns import network_namespace

pytestmark = pytest.mark.usefixtures("live")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    with network_namespace() as netns_path:
        bundle = mininim_bundle(workdir / "bundle", netns_path=netns_path, capabilities=DEFAULT_CAPABILITIES)
        trace = record_mininim(workdir, bundle, requests=200, concurrency=8)
        yield workdir, bundle, trace


def test_fresh_demo_needs_nothing_beyond_the_committed_profile(fresh):
    _, _, trace = fresh
    done = tracer_cli("diff", str(PROFILE), str(trace), "--format", "json")
    result = json.loads(done.stdout)
    assert done.returncode == 0 and not result["needs_more"], (
        f"a fresh mini-NIM run needs {result['syscalls']['added']} {result['capabilities']['added']} beyond "
        f"{PROFILE.relative_to(REPO)}: re-run scripts/demo and commit the profile"
    )


def test_committed_profile_passes_verification_under_load(fresh):
    _, bundle, _ = fresh
    done = tracer_cli(
        "verify",
        str(PROFILE),
        "--bundle",
        str(bundle),
        "--ready-url",
        READY_URL,
        "--load",
        load_command(200, 8),
        "--format",
        "json",
    )
    report = json.loads(done.stdout)
    assert report["passed"], report["failures"]
    assert report["refused"] == [] and report["load"]["exit_status"] == 0 and report["stop"]["clean"]
    assert all(d["refused"] for d in report["dangerous"] if not d["allowed_by_profile"])
    assert {d["syscall"] for d in report["dangerous"]} >= {"mount", "unshare", "setns", "ptrace", "bpf", "keyctl"}
    assert json.loads((PROFILE / "capabilities.json").read_text())["add"] == []
    applicable = [p for p in report["argument_probes"] if p["applicable"] and not p["allowed_by_profile"]]
    assert {p["probe"] for p in applicable} >= {"clone:CLONE_NEWUSER|CLONE_NEWNET", "clone3:CLONE_NEWUSER|CLONE_NEWNET"}
    assert all(p["refused"] for p in applicable), applicable


def test_committed_profile_is_argument_level_and_never_wider_than_the_runtime_default():
    seccomp = json.loads((PROFILE / "seccomp.json").read_text())
    clone = [rule for rule in seccomp["syscalls"] if "clone" in rule["names"] and rule["action"] == "SCMP_ACT_ALLOW"]
    assert clone and all(rule.get("args") for rule in clone)
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in seccomp["syscalls"]
    done = tracer_cli("risk", str(PROFILE), "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["wider"] == []
