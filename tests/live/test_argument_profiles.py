"""Argument-level profiles under runc: a workload that needs a namespace flag and a netlink
protocol gets exactly those values and no more, every kind of rule holds under libseccomp,
and the dangerous calls it did not make are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from support.cli import tracer_cli
from tracer import runc
from tracer.embedded.bundle import Bind, make_bundle

pytestmark = pytest.mark.usefixtures("live")

# As uid 1000 without capabilities: lists the interfaces through NETLINK_ROUTE (glibc's
# if_nameindex), creates a child in new user+network namespaces, unshares a user namespace
# in a child, and makes one call each of setns, personality, prctl and ioctl that the
# profile must allow with exactly these values. With EXTRA=1 it then tries neighbouring
# values, each of which the kernel itself would allow: only the filter can refuse them.
WORKLOAD = r"""
import ctypes, fcntl, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = {"clone": 56, "unshare": 272, "setns": 308, "personality": 135, "prctl": 157, "ioctl": 16}
NEWUSER, NEWNET, NEWNS, NEWUTS, SIGCHLD = 0x10000000, 0x40000000, 0x20000, 0x4000000, 17

def errno_of(name, *args):
    ret = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_ulong(a) for a in args])
    return ctypes.get_errno() if ret == -1 else 0

def in_child(name, *args):  # namespace changes happen in a child that exits at once
    pid = os.fork()
    if pid == 0:
        os._exit(errno_of(name, *args))
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

def clone_errno(flags):
    pid = libc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_ulong(flags | SIGCHLD), None, None, None, None)
    if pid == 0:
        os._exit(0)
    if pid == -1:
        return ctypes.get_errno()
    os.waitpid(pid, 0)
    return 0

def socket_errno(family, kind, protocol):
    try:
        socket.socket(family, kind, protocol).close()
        return 0
    except OSError as err:
        return err.errno

null = os.open("/dev/null", os.O_RDONLY)
name = ctypes.create_string_buffer(b"wl")
print("interfaces", " ".join(sorted(name for _, name in socket.if_nameindex())))
print("clone newuser+newnet", clone_errno(NEWUSER | NEWNET))
print("unshare newuser", in_child("unshare", NEWUSER))
print("setns net", errno_of("setns", 2**32 - 1, NEWNET))          # bad fd: EBADF once past the filter
print("personality query", errno_of("personality", 0xffffffff))
print("prctl set name", errno_of("prctl", 15, ctypes.addressof(name)))
print("ioctl fioclex", errno_of("ioctl", null, 0x5451))
if os.environ.get("EXTRA"):
    print("extra clone newuser", clone_errno(NEWUSER))
    print("extra clone newuser+newnet+newns", clone_errno(NEWUSER | NEWNET | NEWNS))
    print("extra unshare newuser+newns", in_child("unshare", NEWUSER | NEWNS))
    print("extra setns uts", errno_of("setns", 2**32 - 1, NEWUTS))
    print("extra personality query sign-extended", errno_of("personality", 0xffffffffffffffff))
    print("extra personality addr_no_randomize", in_child("personality", 0x0040000))
    print("extra prctl dumpable", errno_of("prctl", 4, 1))
    print("extra ioctl fionclex", errno_of("ioctl", null, 0x5450))
    print("extra netlink route", socket_errno(socket.AF_NETLINK, socket.SOCK_RAW, 0))
    print("extra netlink netfilter", socket_errno(socket.AF_NETLINK, socket.SOCK_RAW, 12))
    print("extra inet", socket_errno(socket.AF_INET, socket.SOCK_STREAM, 0))
"""
ALLOWED = {
    "clone newuser+newnet": 0,
    "unshare newuser": 0,
    "setns net": 9,
    "personality query": 0,
    "prctl set name": 0,
    "ioctl fioclex": 0,
}
# What each neighbouring value gets under the profile: the filter's EPERM, or past the filter.
EXTRA = {
    "extra clone newuser": 1,
    "extra clone newuser+newnet+newns": 1,
    "extra unshare newuser+newns": 1,
    "extra setns uts": 1,
    "extra personality query sign-extended": 0,
    "extra personality addr_no_randomize": 1,
    "extra prctl dumpable": 1,
    "extra ioctl fionclex": 1,
    "extra netlink route": 0,
    "extra netlink netfilter": 1,
    "extra inet": 1,
}


def workload_bundle(directory, env=None):
    script = directory.parent / "workload.py"
    script.write_text(WORKLOAD)
    return make_bundle(
        directory,
        ["/usr/bin/python3", "/opt/workload.py"],
        uid=1000,
        gid=1000,
        mounts=[Bind(script, "/opt/workload.py")],
        env=env or {},
    )


def outputs(text: str) -> dict[str, str]:
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if " " in line)
    return {key: value for key, value in lines}


def run_under(profile, directory, env=None) -> tuple[int, dict[str, str]]:
    bundle = workload_bundle(directory, env)
    tracer_cli("apply", str(profile), "--bundle", str(bundle))
    out = directory.parent / f"{directory.name}.out"
    with open(out, "w") as stdout:
        status = runc.run_to_completion(
            bundle, f"t-{uuid.uuid4().hex[:8]}", stdout=stdout, stderr=subprocess.STDOUT, timeout=60
        )
    return status, outputs(out.read_text())


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("argprofiles")
    trace = workdir / "t.json"
    done = tracer_cli(
        "record",
        "--runc-bundle",
        str(workload_bundle(workdir / "record")),
        "--out",
        str(trace),
        "--container-log",
        str(workdir / "recorded.out"),
    )
    assert done.returncode == 0, done.stderr
    profile = workdir / "profile"
    done = tracer_cli("generate", str(trace), "--out", str(profile), "--ioctl-requests")
    assert done.returncode == 0, done.stderr
    return workdir, trace, profile, done.stdout


def rules_for(profile, name) -> list[dict]:
    seccomp = json.loads((profile / "seccomp.json").read_text())
    return [rule for rule in seccomp["syscalls"] if name in rule["names"]]


def test_recorded_run_did_everything_it_needs(recorded):
    workdir, *_ = recorded
    seen = outputs((workdir / "recorded.out").read_text())
    assert {key: int(seen[key]) for key in ALLOWED} == ALLOWED


def test_profile_allows_exactly_the_recorded_values(recorded):
    _, _, profile, generate_output = recorded
    clone = {rule["args"][0]["valueTwo"] for rule in rules_for(profile, "clone")}
    assert clone == {0, 0x50000000} and all(len(rule["args"]) == 1 for rule in rules_for(profile, "clone"))
    sockets = [{arg["index"]: arg["valueTwo"] for arg in rule["args"]} for rule in rules_for(profile, "socket")]
    assert sockets == [{0: 16, 2: 0}]  # AF_NETLINK, NETLINK_ROUTE and nothing else
    assert [rule["errnoRet"] for rule in rules_for(profile, "clone3")] == [38]
    assert [rule["args"] for rule in rules_for(profile, "unshare")] == [
        [{"index": 0, "value": 0x10000000, "op": "SCMP_CMP_EQ"}]
    ]
    assert "socket: AF_NETLINK NETLINK_ROUTE" in generate_output and "CLONE_NEWUSER|CLONE_NEWNET" in generate_output


def test_workload_runs_under_its_argument_profile_with_the_same_answers(recorded, tmp_path):
    workdir, _, profile, _ = recorded
    status, seen = run_under(profile, tmp_path / "enforced")
    assert status == 0, seen
    recorded_run = outputs((workdir / "recorded.out").read_text())
    assert {k: seen[k] for k in [*ALLOWED, "interfaces"]} == {k: recorded_run[k] for k in [*ALLOWED, "interfaces"]}


def test_neighbouring_values_are_refused_by_the_filter(recorded, tmp_path):
    _, _, profile, _ = recorded
    status, seen = run_under(profile, tmp_path / "extra", env={"EXTRA": "1"})
    assert status == 0, seen
    assert {key: int(seen[key]) for key in EXTRA} == EXTRA


def test_risk_lists_each_widening_with_its_evidence(recorded):
    _, _, profile, _ = recorded
    done = tracer_cli("risk", str(profile), "--format", "json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["findings"] == 0
    wider = {w["syscall"]: w for w in report["wider"]}
    assert set(wider) == {"clone", "unshare", "setns"}  # Docker refuses these without CAP_SYS_ADMIN
    assert "CLONE_NEWUSER|CLONE_NEWNET" in wider["clone"]["rule"]
    assert any("1x in startup, succeeded" in line for line in wider["clone"]["evidence"])


def test_risk_finds_a_widening_nobody_recorded(recorded, tmp_path):
    _, _, profile, _ = recorded

    edited = tmp_path / "edited"
    shutil.copytree(profile, edited)
    seccomp = json.loads((edited / "seccomp.json").read_text())
    seccomp["syscalls"].append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0xFFFFFFFF, "valueTwo": 40, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )
    (edited / "seccomp.json").write_text(json.dumps(seccomp))
    done = tracer_cli("risk", str(edited))
    assert done.returncode == 1
    assert "socket AF_VSOCK" in done.stdout and "FINDING" in done.stdout


def test_verify_passes_and_refuses_every_argument_probe_the_workload_did_not_make(recorded, tmp_path):
    _, _, profile, _ = recorded
    done = tracer_cli("verify", str(profile), "--bundle", str(workload_bundle(tmp_path / "verify")), "--format", "json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["passed"], report["failures"]
    probes = {p["probe"]: p for p in report["argument_probes"]}
    assert probes["clone:CLONE_NEWUSER|CLONE_NEWNET"]["allowed_by_profile"]
    assert probes["socket:AF_NETLINK/NETLINK_ROUTE"]["allowed_by_profile"]
    for name in (
        "clone3:CLONE_NEWUSER|CLONE_NEWNET",
        "socket:AF_NETLINK/NETLINK_NETFILTER",
        "personality:ADDR_NO_RANDOMIZE",
    ):
        assert probes[name]["applicable"] and probes[name]["refused"], probes[name]


def test_verify_names_a_value_the_conditions_refused(recorded, tmp_path):
    _, _, profile, _ = recorded

    edited = tmp_path / "no-netlink"
    shutil.copytree(profile, edited)
    seccomp = json.loads((edited / "seccomp.json").read_text())
    seccomp["syscalls"] = [rule for rule in seccomp["syscalls"] if rule["names"] != ["socket"]]
    seccomp["syscalls"].append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",  # AF_UNIX only
            "args": [{"index": 0, "value": 0xFFFFFFFF, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )
    (edited / "seccomp.json").write_text(json.dumps(seccomp))
    done = tracer_cli("verify", str(edited), "--bundle", str(workload_bundle(tmp_path / "verify")), "--format", "json")
    report = json.loads(done.stdout)
    assert done.returncode == 1
    (refused,) = [r for r in report["refused"] if r["kind"] == "arguments"]
    assert refused["syscall"] == "socket" and "socket AF_NETLINK NETLINK_ROUTE" in refused["name"]
    assert refused["phase"] == "startup" and "refused by the profile's argument conditions" in "\n".join(
        report["failures"]
    )
