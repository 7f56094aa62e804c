"""tracer verify finds what a profile refuses, per phase, in a real runc container."""

from __future__ import annotations

import json
import shutil

import pytest

from support.cli import tracer_cli
from support.workloads import chown_bundle

pytestmark = pytest.mark.usefixtures("live")


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("verify")
    bundle = chown_bundle(workdir / "bundle")
    trace = workdir / "t.json"
    tracer_cli("record", "--runc-bundle", str(bundle), "--out", str(trace))
    tracer_cli("generate", str(trace), "--out", str(workdir / "profile"))
    return workdir / "profile", bundle


def edited(profile_dir, tmp_path, edit_seccomp=None, edit_caps=None):
    copy = tmp_path / "edited"
    shutil.copytree(profile_dir, copy)
    for name, edit in (("seccomp.json", edit_seccomp), ("capabilities.json", edit_caps)):
        if edit:
            doc = json.loads((copy / name).read_text())
            edit(doc)
            (copy / name).write_text(json.dumps(doc))
    return copy


def verify(profile_dir, bundle):
    done = tracer_cli("verify", str(profile_dir), "--bundle", str(bundle), "--format", "json")
    return done.returncode, json.loads(done.stdout)


def test_generated_profile_passes(profile):
    status, report = verify(*profile)
    assert status == 0 and report["passed"] and report["refused"] == []
    assert report["stop"]["exit_status"] == 0
    assert {d["syscall"] for d in report["dangerous"] if d["refused"]} >= {"mount", "unshare", "ptrace", "bpf"}
    # Argument probes: each that succeeds in an unconfined twin (the profile's capabilities, so
    # AF_PACKET fails there too without CAP_NET_RAW) is refused inside the container.
    probes = {p["probe"]: p for p in report["argument_probes"]}
    assert not probes["socket:AF_PACKET"]["applicable"] and probes["socket:AF_PACKET"]["unconfined_errno"] == 1
    for name in (
        "clone:CLONE_NEWUSER|CLONE_NEWNET",
        "clone3:CLONE_NEWUSER|CLONE_NEWNET",
        "socket:AF_NETLINK/NETLINK_NETFILTER",
        "personality:ADDR_NO_RANDOMIZE",
    ):
        assert probes[name]["applicable"] and probes[name]["refused"] and not probes[name]["allowed_by_profile"], (
            probes[name]
        )
    assert all(p["refused"] for p in probes.values() if p["applicable"])


def test_a_missing_syscall_is_reported_with_its_phase(profile, tmp_path):
    profile_dir, bundle = profile

    def drop_chown(doc):
        doc["syscalls"][0]["names"] = [n for n in doc["syscalls"][0]["names"] if n not in ("chown", "fchownat")]

    status, report = verify(edited(profile_dir, tmp_path, edit_seccomp=drop_chown), bundle)
    assert status == 1 and not report["passed"]
    refused = {(r["kind"], r["name"], r["phase"]) for r in report["refused"]}
    assert refused & {("syscall", "chown", "startup"), ("syscall", "fchownat", "startup")}
    assert report["stop"]["exit_status"] != 0  # the workload died of it


def test_a_missing_capability_is_reported(profile, tmp_path):
    profile_dir, bundle = profile
    status, report = verify(edited(profile_dir, tmp_path, edit_caps=lambda doc: doc.update(add=[])), bundle)
    assert status == 1
    assert any(r["kind"] == "capability" and r["name"] == "CAP_CHOWN" for r in report["refused"])


def test_bad_profile_directory_is_exit_2(profile, tmp_path):
    _, bundle = profile
    done = tracer_cli("verify", str(tmp_path / "nope"), "--bundle", str(bundle), check=False)
    assert done.returncode == 2 and "profile directory not found" in done.stderr
