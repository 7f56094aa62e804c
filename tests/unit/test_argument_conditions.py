"""Argument conditions, the comparison with the runtime default, and every consumer that must
carry conditions through: offline, on traces and profiles as a user would hold them."""

from __future__ import annotations

import json
import shutil

import orjson
import pytest
from ruamel.yaml import YAML

from support.paths import FIXTURES, REPO
from support.spo_crd import validate_against_crd
from tracer.cli import main
from tracer.embedded.bundle import make_bundle
from tracer.profile.against import compare
from tracer.profile.filter import Condition, Filter, Rule, filter_from_oci, runtime_default
from tracer.syscalls import syscall_number
from tracer.trace.format import PHASES

TRACES = sorted(FIXTURES.glob("*.trace.json"))
X86 = "SCMP_ARCH_X86_64"
NS = 0x7E020000


def masked32(index: int, value: int) -> dict:
    return {"index": index, "value": 0xFFFFFFFF, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}


def oci(*rules: dict, names=("read", "write", "exit_group")) -> dict:
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": [X86],
        "syscalls": [{"names": list(names), "action": "SCMP_ACT_ALLOW"}, *rules],
    }


def allow(name: str, *args: dict) -> dict:
    return {"names": [name], "action": "SCMP_ACT_ALLOW", **({"args": list(args)} if args else {})}


def wider_than_runtime_default(profile: dict, caps=()) -> list[str]:
    comparison = compare(filter_from_oci(profile), runtime_default(list(caps), X86), X86)
    return sorted(w.syscall for w in comparison.wider)


# ---------------------------------------------------------------- the comparison


def test_clone_without_the_namespace_mask_is_wider_than_docker():
    assert wider_than_runtime_default(oci(allow("clone"))) == ["clone"]
    assert (
        wider_than_runtime_default(
            oci(allow("clone", {"index": 0, "value": NS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}))
        )
        == []
    )
    user_net = {"index": 0, "value": NS, "valueTwo": 0x50000000, "op": "SCMP_CMP_MASKED_EQ"}
    assert wider_than_runtime_default(oci(allow("clone", user_net))) == ["clone"]
    assert wider_than_runtime_default(oci(allow("clone", user_net)), caps=["CAP_SYS_ADMIN"]) == []


def test_socket_families_docker_refuses_are_found_at_the_boundary():
    assert wider_than_runtime_default(oci(allow("socket", masked32(0, 2)), allow("socket", masked32(0, 39)))) == []
    assert wider_than_runtime_default(oci(allow("socket", masked32(0, 38)))) == ["socket"]  # AF_ALG
    assert wider_than_runtime_default(oci(allow("socket", masked32(0, 40)))) == ["socket"]  # AF_VSOCK
    assert wider_than_runtime_default(oci(allow("socket"))) == ["socket"]


def test_personality_compared_as_the_kernel_reads_it():
    # The kernel reads 32 bits: a low-32 rule for 0xffffffff allows nothing Docker's EQ does not.
    assert wider_than_runtime_default(oci(allow("personality", masked32(0, 0xFFFFFFFF)))) == []
    assert wider_than_runtime_default(oci(allow("personality", masked32(0, 0x0040000)))) == ["personality"]


def test_names_docker_refuses_and_default_actions_that_allow():
    assert wider_than_runtime_default(oci(allow("unshare"), allow("ptrace"))) == ["unshare"]  # ptrace: kernel >= 4.8
    assert wider_than_runtime_default(oci(), caps=["CAP_SYS_ADMIN"]) == []
    logging = {**oci(), "defaultAction": "SCMP_ACT_LOG"}
    assert {"mount", "bpf", "unshare"} <= set(wider_than_runtime_default(logging))


def test_clone3_answered_enosys_like_docker_is_not_wider_allowed_is():
    enosys = {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    assert wider_than_runtime_default(oci(enosys)) == []
    assert wider_than_runtime_default(oci(allow("clone3"))) == ["clone3"]


def test_filter_applies_the_most_restrictive_matching_rule():
    f = Filter(
        Rule("SCMP_ACT_ERRNO", (), 1),
        {"socket": [Rule("SCMP_ACT_ALLOW"), Rule("SCMP_ACT_ERRNO", (Condition(0, "SCMP_CMP_EQ", 40),), 1)]},
    )
    assert f.allows("socket", {0: 2}) and not f.allows("socket", {0: 40})


# ---------------------------------------------------------------- generate


def v2_trace(tmp_path, rows: list[dict], name="t.json", recorded=None, started_at=None):
    """A real fixture's counters, with an arguments section as the recorder writes it (and
    the rows' calls counted, where the fixture did not make them)."""
    doc = orjson.loads((FIXTURES / "mini-nim.trace.json").read_bytes())
    assert doc["version"] == 2
    # Only the rows given: the fixture's own (recorded) clone rows would add to the evidence.
    counters = doc["totals"]["syscalls"]
    for r in rows:
        phase, nr = PHASES.index(r["phase"]), syscall_number(X86, r["syscall"])
        if not any(c[0] == phase and c[1] == nr for c in counters):
            counters.append([phase, nr, r["count"], 0, 0, 0])
    if started_at is not None:  # another run of the same workload (merge counts a run given twice once)
        doc["metadata"]["started_at"] = started_at
    doc["arguments"] = {
        "recorded": recorded
        or ["clone", "clone3", "unshare", "setns", "socket", "socketpair", "personality", "prctl", "ioctl", "connect"],
        "rows": rows,
    }
    path = tmp_path / name
    path.write_bytes(orjson.dumps(doc))
    return path


def v1_trace(tmp_path, name="v1.json", recording="http-server"):
    """A real version 1 recording (tests/data/v1): no arguments section."""
    path = tmp_path / name
    path.write_bytes((REPO / f"tests/data/v1/{recording}.trace.json").read_bytes())
    return path


def row(syscall, phase="startup", errno=0, count=1, **values):
    return {"syscall": syscall, "phase": phase, **values, "errno": errno, "count": count}


MININIM_ROWS = [
    row("clone3", flags=0x3D0F00, count=4),
    row("socket", family=2, type=1, protocol=0, count=2),
    row("socket", family=16, type=3, protocol=0),
    row("socket", family=40, type=1, protocol=0, phase="runtime"),  # runc's, never in the profile
    row("personality", persona=0xFFFFFFFFFFFFFFFF),
    row("ioctl", request=0x5401, device="/dev/pts/0", errno=25, count=3),
    row("connect", family=2, address="127.0.0.1", port=8000, errno=0),
]


def generated(tmp_path, trace, *args) -> tuple[dict, str]:
    out = tmp_path / "profile"
    assert main(["generate", str(trace), "--out", str(out), *args]) == 0
    return json.loads((out / "seccomp.json").read_text()), out


def rule_args(seccomp: dict, name: str) -> list[list[dict]]:
    return [
        rule.get("args") for rule in seccomp["syscalls"] if name in rule["names"] and rule["action"] == "SCMP_ACT_ALLOW"
    ]


def test_generate_conditions_from_recorded_values(tmp_path, capsys):
    seccomp, out = generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS))
    text = capsys.readouterr().out
    assert rule_args(seccomp, "socket") == [[masked32(0, 2)], [masked32(0, 16), masked32(2, 0)]]
    assert rule_args(seccomp, "personality") == [[masked32(0, 0xFFFFFFFF)]]
    assert rule_args(seccomp, "clone") == [[{"index": 0, "value": NS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]]
    assert rule_args(seccomp, "ioctl") == [None]  # only with --ioctl-requests
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in seccomp["syscalls"]
    assert "never wider than the runtime default" in text
    assert main(["risk", str(out)]) == 0


def test_ioctl_requests_only_when_asked_and_by_their_low_32_bits(tmp_path, capsys):
    rows = [*MININIM_ROWS, row("ioctl", request=0xFFFFFFFFC0184630, device="/dev/nvidiactl")]
    seccomp, _ = generated(tmp_path, v2_trace(tmp_path, rows), "--ioctl-requests")
    assert rule_args(seccomp, "ioctl") == [[masked32(1, 0x5401)], [masked32(1, 0xC0184630)]]
    assert "ioctl: TCGETS, _IOWR('F', 0x30, 24) [NVIDIA (nvidia.ko)]" in capsys.readouterr().out


def test_clone3_with_flags_clone_cannot_express_is_allowed_loudly(tmp_path, capsys):
    rows = [row("clone3", flags=0x200000000 | 0x10000000), row("clone", flags=0x11)]  # CLONE_INTO_CGROUP
    seccomp, out = generated(tmp_path, v2_trace(tmp_path, rows))
    assert rule_args(seccomp, "clone3") == [None]
    assert "clone3 is ALLOWED" in capsys.readouterr().err
    done = main(["risk", str(out), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert done == 0 and [w["syscall"] for w in report["wider"]] == ["clone3"] and report["wider"][0]["evidence"]


def test_v1_trace_gets_the_runtime_defaults_conditions_with_a_warning(tmp_path, capsys):
    seccomp, _ = generated(tmp_path, v1_trace(tmp_path))  # a Python HTTP server: socket
    assert "no argument data (trace format version 1)" in capsys.readouterr().err
    assert len(rule_args(seccomp, "socket")) == 3 and None not in rule_args(seccomp, "socket")
    shell = tmp_path / "shell"
    shell.mkdir()
    seccomp, _ = generated(shell, v1_trace(shell, recording="shell-nonroot"))  # a shell pipeline: clone
    assert "no argument data (trace format version 1)" in capsys.readouterr().err
    assert rule_args(seccomp, "clone") == [[{"index": 0, "value": NS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]]


def test_no_args_writes_names_only_and_risk_reports_it(tmp_path, capsys):
    seccomp, out = generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS), "--no-args")
    assert rule_args(seccomp, "clone") == [None] and rule_args(seccomp, "socket") == [None]
    capsys.readouterr()
    assert main(["risk", str(out)]) == 1
    text = capsys.readouterr().out
    assert "clone with any arguments" in text and "socket with any arguments" in text and "FINDING" in text


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_every_fixture_profile_is_never_wider_than_the_runtime_default(path, tmp_path, capsys):
    _, out = generated(tmp_path, path)
    capsys.readouterr()
    assert main(["risk", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["wider"] == []


def test_risk_against_unconfined_and_a_file(tmp_path, capsys):
    _, out = generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS))
    capsys.readouterr()
    assert main(["risk", str(out), "--against", "unconfined"]) == 0
    assert "never wider than unconfined" in capsys.readouterr().out
    seccomp = json.loads((out / "seccomp.json").read_text())
    seccomp["syscalls"] = [
        rule for rule in seccomp["syscalls"] if rule.get("args") != [masked32(0, 16), masked32(2, 0)]
    ]
    baseline = tmp_path / "without-netlink.json"
    baseline.write_text(json.dumps(seccomp))
    assert main(["risk", str(out), "--against", str(baseline)]) == 0  # wider, with evidence
    text = capsys.readouterr().out
    assert "socket AF_NETLINK NETLINK_ROUTE: the baseline refuses" in text and "1x in startup, succeeded" in text
    _, names_only = generated(tmp_path / "n", v2_trace(tmp_path, MININIM_ROWS, name="n.json"), "--no-args")
    capsys.readouterr()
    assert main(["risk", str(names_only), "--against", str(baseline)]) == 1  # socket AF_INET6 recorded by nobody
    assert main(["risk", str(out), "--against", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- consumers


def test_diff_a_condition_that_widened_needs_more(tmp_path, capsys):
    old = tmp_path / "old"
    generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS))
    shutil.move(tmp_path / "profile", old)
    new_rows = [*MININIM_ROWS, row("socket", family=16, type=3, protocol=12)]  # NETLINK_NETFILTER
    new_trace = v2_trace(tmp_path, new_rows, name="new.json")
    capsys.readouterr()
    assert main(["diff", str(old), str(new_trace), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["syscalls"]["added"] == [] and len(report["arguments"]["added"]) == 1
    assert "socket AF_NETLINK NETLINK_NETFILTER" in report["arguments"]["added"][0]
    assert main(["diff", str(old), str(v2_trace(tmp_path, MININIM_ROWS, name="same.json"))]) == 0


def test_diff_between_profiles_sees_a_widened_condition(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(oci(allow("socket", masked32(0, 2)))))
    new.write_text(json.dumps(oci(allow("socket", masked32(0, 2)), allow("socket", masked32(0, 10)))))
    assert main(["diff", str(old), str(new)]) == 1
    assert "+ arguments: socket AF_INET6" in capsys.readouterr().out
    assert main(["diff", str(new), str(old)]) == 0


def test_merge_keeps_arguments_only_where_every_run_recorded_them(tmp_path, capsys):
    a = v2_trace(tmp_path, MININIM_ROWS, name="a.json")
    b = v2_trace(
        tmp_path,
        [row("socket", family=2, type=1, protocol=0, count=5)],
        name="b.json",
        started_at="2026-01-01T00:00:00.000Z",
    )
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "ab.json")]) == 0
    merged = orjson.loads((tmp_path / "ab.json").read_bytes())
    inet = [r for r in merged["arguments"]["rows"] if r["syscall"] == "socket" and r["family"] == 2]
    assert merged["version"] == 2 and inet[0]["count"] == 7
    assert main(["merge", str(a), str(v1_trace(tmp_path)), "--out", str(tmp_path / "av1.json")]) == 0
    assert orjson.loads((tmp_path / "av1.json").read_bytes())["arguments"] == {"recorded": [], "rows": []}


def test_seccompprofile_carries_argument_conditions(tmp_path, capsys):
    _, out = generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS))
    assert (
        main(
            [
                "k8s",
                "seccompprofile",
                str(out),
                "--name",
                "nim",
                "--namespace",
                "nim",
                "--out-dir",
                str(tmp_path / "k8s"),
            ]
        )
        == 0
    )
    obj = YAML(typ="safe").load((tmp_path / "k8s/nim.seccompprofile.yaml").read_text())
    validate_against_crd(obj)
    socket_rules = [rule["args"] for rule in obj["spec"]["syscalls"] if rule["names"] == ["socket"]]
    assert socket_rules == [[masked32(0, 2)], [masked32(0, 16), masked32(2, 0)]]
    plain = json.loads((tmp_path / "k8s/nim.json").read_text())
    assert [r for r in plain["syscalls"] if r["names"] == ["clone"]][0]["args"][0]["value"] == NS


def test_apply_writes_the_conditions_into_the_bundle(tmp_path):
    seccomp, out = generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS))
    bundle = make_bundle(tmp_path / "bundle", ["/bin/true"])
    assert main(["apply", str(out), "--bundle", str(bundle)]) == 0
    assert json.loads((bundle / "config.json").read_text())["linux"]["seccomp"] == seccomp


# ---------------------------------------------------------------- bad input


BAD_ARGUMENTS = {
    "not-an-object": ([], "arguments: expected an object"),
    "unknown-syscall": ({"recorded": ["mount"], "rows": []}, "arguments.recorded[0]: expected one of"),
    "row-of-unrecorded": (
        {"recorded": ["clone"], "rows": [row("socket", family=2, type=1, protocol=0)]},
        "must be one of arguments.recorded",
    ),
    "missing-value": ({"recorded": ["socket"], "rows": [row("socket", family=2, type=1)]}, "has no 'protocol'"),
    "negative": (
        {"recorded": ["clone"], "rows": [row("clone", flags=-1)]},
        "arguments.rows[0].flags: -1 is below the minimum 0",
    ),
    "bad-phase": (
        {"recorded": ["clone"], "rows": [row("clone", phase="later", flags=0)]},
        "arguments.rows[0].phase: expected one of",
    ),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=str)
def test_bad_arguments_section_is_one_line_exit_2(case, tmp_path, capsys):
    section, message = BAD_ARGUMENTS[case]
    doc = orjson.loads((FIXTURES / "mini-nim.trace.json").read_bytes())
    doc.update(version=2, arguments=section)
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(doc))
    assert main(["generate", str(path), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err
    assert not (tmp_path / "p").exists()


def test_bad_condition_in_a_profile_is_exit_2(tmp_path, capsys):
    _, out = generated(tmp_path, v2_trace(tmp_path, MININIM_ROWS))
    seccomp = json.loads((out / "seccomp.json").read_text())
    seccomp["syscalls"][1]["args"][0]["op"] = "SCMP_CMP_ROUGHLY"
    (out / "seccomp.json").write_text(json.dumps(seccomp))
    capsys.readouterr()
    assert main(["risk", str(out)]) == 2
    assert "args[0].op: expected one of" in capsys.readouterr().err


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: nim
spec:
  containers:
    - name: nim
      image: nvcr.io/nim/llm:1
"""


def test_harden_warns_where_the_localhost_profile_allows_more_than_runtime_default(tmp_path, capsys):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    _, names_only = generated(tmp_path / "n", v2_trace(tmp_path, MININIM_ROWS), "--no-args")
    capsys.readouterr()
    main(["k8s", "harden", str(manifest), "--profile", str(names_only), "--out", str(tmp_path / "out.yaml")])
    err = capsys.readouterr().err
    assert "allows clone with any arguments, which RuntimeDefault refuses" in err and "NO recorded evidence" in err
    _, conditioned = generated(tmp_path / "c", v2_trace(tmp_path, MININIM_ROWS, name="c.json"))
    capsys.readouterr()
    main(["k8s", "harden", str(manifest), "--profile", str(conditioned), "--out", str(tmp_path / "out2.yaml")])
    assert "RuntimeDefault refuses" not in capsys.readouterr().err


def test_show_lists_the_recorded_arguments(tmp_path, capsys):
    assert main(["show", str(v2_trace(tmp_path, MININIM_ROWS))]) == 0
    text = capsys.readouterr().out
    assert "socket AF_NETLINK NETLINK_ROUTE" in text and "ioctl TCGETS on /dev/pts/0" in text
    assert "connect 127.0.0.1:8000" in text
    assert main(["show", str(v2_trace(tmp_path, MININIM_ROWS)), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {
        "syscall": "socket",
        "phase": "startup",
        "family": 16,
        "type": 3,
        "protocol": 0,
        "errno": 0,
        "count": 1,
    } in shown["arguments"]["rows"]
