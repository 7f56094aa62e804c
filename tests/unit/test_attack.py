"""ATT&CK residual risk: the data file, the mapping, the seccomp evaluator and the mini-NIM profile."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO
from tracer.errors import InputError
from tracer.profile.directory import load_profile_dir
from tracer.profile.filter import filter_from_profile
from tracer.risk import attack
from tracer.risk.attack import (
    UNCONFINED,
    Confinement,
    closed_techniques,
    load_attack_data,
    load_mapping,
    load_techniques,
    reachable_techniques,
    report_json,
    report_text,
)

ROOT = REPO
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
CLONE_NEW_ALL = 0x7E020000
CLONE_NEWUSER = 0x10000000
ALL_CAPABILITIES = sorted({entry.capability for entry in load_mapping() if entry.capability})


def profile(*rules, default="SCMP_ACT_ERRNO") -> dict:
    return {
        "defaultAction": default,
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": list(rules),
    }


def allow(*names, args=None, action="SCMP_ACT_ALLOW") -> dict:
    rule = {"names": list(names), "action": action}
    if args:
        rule["args"] = args
    return rule


def arg(index, value, op="SCMP_CMP_EQ", value_two=None) -> dict:
    cond = {"index": index, "value": value, "op": op}
    if value_two is not None:
        cond["valueTwo"] = value_two
    return cond


def syscall_allowed(seccomp, name, args=None, *, capabilities=()) -> bool:
    """What risk asks of a profile: can a caller get this call through?"""
    return filter_from_profile(seccomp, capabilities).may_pass(name, args)


def reachable(seccomp, capabilities=()) -> dict[str, list]:
    """technique id -> its routes."""
    return {r.technique.id: list(r.routes) for r in reachable_techniques(seccomp, list(capabilities))}


def route_names(routes) -> set[str]:
    return {route.name for route in routes}


# ---------------------------------------------------------------- data and mapping


def test_data_file_records_its_source_version_and_licence():
    source = load_attack_data()["source"]
    assert source["repository"] == "https://github.com/mitre/cti"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert re.fullmatch(r"\d+\.\d+", source["attack_version"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source["commit_date"])
    assert "The MITRE Corporation" in source["licence"]["copyright"]
    assert "reproduce" in source["licence"]["text"]
    assert source["command"].startswith("scripts/make-attack-data ") and source["commit"] in source["command"]


def test_techniques_are_well_formed():
    data = load_attack_data()
    techniques = data["techniques"]
    ids = [t["id"] for t in techniques]
    assert len(ids) == len(set(ids))
    for t in techniques:
        assert TECHNIQUE_ID.match(t["id"]), t["id"]
        assert t["url"] == "https://attack.mitre.org/techniques/" + t["id"].replace(".", "/")
        assert t["platform_containers"] == ("Containers" in t["platforms"])
        assert t["tactics"] and all(tactic in data["tactics"] for tactic in t["tactics"])
        if "." in t["id"]:
            assert t["parent"] == t["id"].split(".")[0] and t["parent_name"]
        else:
            assert t["parent"] is None
    assert data["counts"]["containers"] == sum(t["platform_containers"] for t in techniques) >= 40
    assert load_techniques()["T1611"].name == "Escape to Host"
    assert load_techniques()["T1611"].platform_containers


def test_every_mapped_technique_is_in_the_data_file():
    known, mapping = load_techniques(), load_mapping()
    assert mapping
    for entry in mapping:
        assert entry.technique in known, entry.technique
        assert entry.reason.strip().endswith("."), entry
        assert entry.syscalls or entry.capability
        if entry.capability:
            assert entry.capability.startswith("CAP_")
    # techniques outside Containers are there only because the mapping names them
    outside = {t.id for t in known.values() if not t.platform_containers}
    assert outside == outside & attack.mapped_technique_ids()


def test_unknown_argument_value_in_mapping_is_an_error():
    with pytest.raises(ValueError, match="AF_BOGUS"):
        attack.mapping_entry(
            {
                "technique": "T1611",
                "reason": "x.",
                "syscalls": ["socket"],
                "when": [{"index": 0, "any_of": ["AF_BOGUS"]}],
            }
        )
    assert attack.argument_value("SOCK_RAW|SOCK_CLOEXEC") == 0x80003


# ---------------------------------------------------------------- the evaluator


def test_clone_without_args_reaches_escape_to_host():
    routes = reachable(profile(allow("clone")))
    assert "clone" in route_names(routes["T1611"])
    clone_route = next(r for r in routes["T1611"] if r.name == "clone")
    assert "CLONE_NEWUSER" in {combo[0] for combo in clone_route.arguments}


def test_clone_with_all_namespace_bits_masked_to_zero_does_not():
    seccomp = profile(allow("clone", args=[arg(0, CLONE_NEW_ALL, "SCMP_CMP_MASKED_EQ", 0)]))
    assert syscall_allowed(seccomp, "clone", {0: 0x3D0F00})  # a thread
    assert not syscall_allowed(seccomp, "clone", {0: CLONE_NEWUSER})
    found = reachable(seccomp)
    assert "T1611" not in found and "T1068" not in found


def test_clone_masking_only_newuser_leaves_other_namespaces():
    # Docker's rule before CLONE_NEW* were all masked: only the user namespace refused
    seccomp = profile(allow("clone", args=[arg(0, CLONE_NEWUSER, "SCMP_CMP_MASKED_EQ", 0)]))
    found = reachable(seccomp)
    allowed_flags = {combo[0] for r in found["T1611"] for combo in r.arguments}
    assert "CLONE_NEWNS" in allowed_flags and "CLONE_NEWUSER" not in allowed_flags
    assert "T1068" not in found  # that route is the user namespace only


def test_clone3_refused_by_errno_rule_is_no_route():
    seccomp = profile(allow("clone3", action="SCMP_ACT_ERRNO"), default="SCMP_ACT_ALLOW")
    assert "clone3" not in route_names(reachable(seccomp)["T1611"])
    assert "clone3" in route_names(reachable(profile(allow("clone3")))["T1611"])


def test_mount_allowed_reaches_escape_to_host():
    assert "T1611" not in reachable(profile(allow("read")))
    assert route_names(reachable(profile(allow("mount")))["T1611"]) == {"mount"}
    assert route_names(reachable(profile(allow("fsopen")))["T1611"]) == {"fsopen"}


def test_cap_sys_admin_reaches_escape_to_host_even_under_a_tight_profile():
    routes = reachable(profile(), ["CAP_SYS_ADMIN"])["T1611"]
    assert [(r.kind, r.name) for r in routes] == [("capability", "CAP_SYS_ADMIN")]
    assert "T1611" in reachable(profile(), ["SYS_ADMIN"])  # Kubernetes spelling


def test_capability_that_needs_a_refused_syscall_is_no_route():
    assert "T1547.006" not in reachable(profile(), ["CAP_SYS_MODULE"])
    routes = reachable(profile(allow("finit_module")), ["CAP_SYS_MODULE"])["T1547.006"]
    assert {(r.kind, r.name) for r in routes} == {("syscall", "finit_module"), ("capability", "CAP_SYS_MODULE")}
    cap_route = next(r for r in routes if r.kind == "capability")
    assert cap_route.syscalls == ("finit_module",)


def test_socket_only_for_unix_and_inet_does_not_reach_packet_sockets():
    seccomp = profile(*(allow("socket", args=[arg(0, family)]) for family in (1, 2, 10)))
    found = reachable(seccomp)
    assert "T1557.002" not in found  # ARP spoofing needs AF_PACKET
    assert "T1068" not in found
    # the type is not restricted, so raw IP sockets stay reachable
    assert "socket" in route_names(found["T1046"])
    assert all(combo[0] in ("AF_INET", "AF_INET6") for r in found["T1040"] for combo in r.arguments)


def test_conditions_of_one_rule_must_all_hold():
    both = profile(allow("socket", args=[arg(0, 2), arg(1, 1)]))  # AF_INET and SOCK_STREAM
    assert "T1046" not in reachable(both)
    either = profile(allow("socket", args=[arg(0, 2)]), allow("socket", args=[arg(1, 1)]))
    assert "T1046" in reachable(either)  # AF_INET with any type, through the first rule


def test_refusing_actions_do_not_allow():
    for action in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"):
        assert not syscall_allowed(profile(allow("mount", action=action)), "mount"), action
        assert not syscall_allowed(profile(allow("mount", action=action), default="SCMP_ACT_ALLOW"), "mount"), action
    for action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"):
        assert syscall_allowed(profile(allow("mount", action=action)), "mount"), action


def test_refusing_rule_on_an_argument_the_caller_chooses_does_not_close_the_call():
    seccomp = profile(allow("mount", action="SCMP_ACT_ERRNO", args=[arg(3, 0)]), default="SCMP_ACT_ALLOW")
    assert "mount" in route_names(reachable(seccomp)["T1611"])
    refuse_packet = profile(allow("socket", action="SCMP_ACT_ERRNO", args=[arg(0, 17)]), default="SCMP_ACT_ALLOW")
    assert "T1557.002" not in reachable(refuse_packet)
    assert "T1046" in reachable(refuse_packet)


def test_unknown_op_is_an_input_error():
    seccomp = profile(allow("clone", args=[arg(0, CLONE_NEW_ALL, "SCMP_CMP_SOMETHING_NEW", 0)]))
    with pytest.raises(InputError, match="SCMP_CMP_MASKED_EQ"):
        reachable(seccomp)


def test_unknown_action_counts_as_allowing():
    assert "mount" in route_names(reachable(profile(allow("mount", action="SCMP_ACT_SOMETHING_NEW")))["T1611"])


def test_default_log_counts_as_allowed():
    found = reachable(profile(default="SCMP_ACT_LOG"))
    assert {"T1611", "T1055.008", "T1068"} <= found.keys()


def test_unconfined_reaches_every_mapped_technique():
    found = reachable(UNCONFINED.seccomp, ALL_CAPABILITIES)
    assert found and found.keys() == attack.mapped_technique_ids()
    found_log = reachable(profile(default="SCMP_ACT_LOG"), ALL_CAPABILITIES)
    assert found_log.keys() == attack.mapped_technique_ids()
    # and every mapping entry contributes a route
    for entry in load_mapping():
        names = route_names(found[entry.technique])
        assert (entry.capability in names) if entry.capability else (set(entry.syscalls) <= names), entry


def test_docker_style_capability_conditions_are_honoured():
    seccomp = profile(
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        default="SCMP_ACT_ERRNO",
    )
    assert not syscall_allowed(seccomp, "mount")
    assert syscall_allowed(seccomp, "mount", capabilities=["CAP_SYS_ADMIN"])
    assert "T1611" not in reachable(seccomp)


# ---------------------------------------------------------------- the committed mini-NIM profile


def test_mini_nim_profile_reaches_the_techniques_derived_by_hand():
    mini = load_profile_dir(ROOT / "profiles/mini-nim")
    rules: dict[str, list[dict]] = {}
    for rule in mini.seccomp["syscalls"]:
        for name in rule["names"]:
            rules.setdefault(name, []).append(rule)
    # The premises of the hand derivation; if the profile changes, redo it from these names.
    assert mini.seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    assert mini.capabilities_add == []
    assert all(rule.get("args") for rule in rules["clone"])  # clone only without CLONE_NEW* flags
    assert [rule["action"] for rule in rules["clone3"]] == ["SCMP_ACT_ERRNO"]  # clone3: ENOSYS
    # 32-bit arguments are compared on their low 32 bits: MASKED_EQ 0xffffffff, the family in valueTwo.
    families = {rule["args"][0]["valueTwo"] for rule in rules["socket"]}
    assert families == {1, 2} and all(len(rule["args"]) == 1 for rule in rules["socket"])  # AF_UNIX, AF_INET
    assert [rule.get("args") for rule in rules["execve"]] == [None]
    assert (
        not {
            "mount",
            "unshare",
            "setns",
            "ptrace",
            "bpf",
            "keyctl",
            "io_uring_setup",
            "userfaultfd",
            "init_module",
            "finit_module",
            "reboot",
            "process_vm_readv",
        }
        & rules.keys()
    )

    found = reachable(mini.seccomp, mini.capabilities_add)
    assert found.keys() == {
        "T1040",  # socket(AF_INET, SOCK_RAW): the family is allowed, any type (needs CAP_NET_RAW)
        "T1046",  # raw sockets, likewise
        "T1498",  # raw sockets, likewise
        "T1609",  # execve
        "T1059.004",  # execve
    }
    assert route_names(found["T1040"]) == {"socket"}
    assert all(route.kind == "syscall" for routes in found.values() for route in routes)


def test_mini_nim_closes_injection_modules_and_io_uring_against_unconfined():
    mini = Confinement.from_profile_dir(ROOT / "profiles/mini-nim")
    closed = {c.technique.id: c for c in closed_techniques(mini, UNCONFINED)}
    assert {"T1055", "T1055.008", "T1547.006", "T1014", "T1562", "T1552", "T1529", "T1499"} <= closed.keys()
    assert {"T1611", "T1068", "T1557.002"} <= closed.keys()  # by clone's, clone3's and socket's conditions
    assert "T1609" not in closed
    assert "ptrace refused (SCMP_ACT_ERRNO)" in closed["T1055.008"].closed_by
    assert any("refused by argument conditions" in line for line in closed["T1611"].closed_by)


def test_closed_by_argument_conditions_is_said_so():
    ours = Confinement(profile(allow("clone", args=[arg(0, CLONE_NEW_ALL, "SCMP_CMP_MASKED_EQ", 0)])))
    baseline = Confinement(profile(allow("clone")))
    closed = {c.technique.id: c for c in closed_techniques(ours, baseline)}
    assert closed.keys() == {"T1611", "T1068"}
    assert "refused by argument conditions" in closed["T1611"].closed_by[0]
    ours_caps = Confinement(profile(), ())
    closed_caps = closed_techniques(ours_caps, Confinement(profile(), ("CAP_SYS_ADMIN",)))
    assert [(c.technique.id, c.closed_by) for c in closed_caps] == [("T1611", ("CAP_SYS_ADMIN not added",))]


def test_renderings():
    mini = Confinement.from_profile_dir(ROOT / "profiles/mini-nim")
    found = reachable_techniques(mini.seccomp, mini.capabilities)
    closed = closed_techniques(mini)
    doc = json.loads(json.dumps(report_json(found, closed)))
    assert doc["attack_version"] == load_attack_data()["source"]["attack_version"]
    t1609 = next(t for t in doc["reachable"] if t["id"] == "T1609")
    assert t1609["name"] == "Container Administration Command" and {r["name"] for r in t1609["through"]} == {"execve"}
    assert {"T1055.008", "T1611"} <= {t["id"] for t in doc["closed"]}
    text = report_text(found, closed)
    assert "T1609 Container Administration Command" in text and "through execve" in text
    assert "T1040 Network Sniffing" in text and "not tagged Containers" in text
    unconfined = report_text(reachable_techniques(UNCONFINED.seccomp, ()), None)
    assert "T1611 Escape to Host" in unconfined and "through clone with arg 0 CLONE_NEWNS" in unconfined


# ---------------------------------------------------------------- the generator


def write_bundle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--x", "spec_version": "2.0", "objects": [obj]}))


def technique_obj(tid: str, name: str, platforms: list[str], **extra) -> dict:
    return {
        "type": "attack-pattern",
        "id": f"attack-pattern--{tid}",
        "name": name,
        "x_mitre_platforms": platforms,
        "external_references": [
            {
                "source_name": "mitre-attack",
                "external_id": tid,
                "url": "https://attack.mitre.org/techniques/" + tid.replace(".", "/"),
            }
        ],
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "privilege-escalation"}],
        "x_mitre_is_subtechnique": "." in tid,
        **extra,
    }


def test_generator_selects_containers_techniques_and_is_deterministic(tmp_path):
    cti = tmp_path / "cti"
    ap = cti / "enterprise-attack/attack-pattern"
    write_bundle(ap / "a.json", technique_obj("T1611", "Escape to Host", ["Linux", "Containers"]))
    write_bundle(ap / "b.json", technique_obj("T1055", "Process Injection", ["Linux"]))
    write_bundle(ap / "c.json", technique_obj("T1055.008", "Ptrace System Calls", ["Linux"]))
    write_bundle(ap / "d.json", technique_obj("T1999", "Old", ["Containers"], revoked=True))
    write_bundle(ap / "e.json", technique_obj("T1998", "Gone", ["Containers"], x_mitre_deprecated=True))
    write_bundle(
        cti / "enterprise-attack/x-mitre-tactic/t.json",
        {
            "type": "x-mitre-tactic",
            "id": "x-mitre-tactic--1",
            "name": "Privilege Escalation",
            "x_mitre_shortname": "privilege-escalation",
            "external_references": [{"source_name": "mitre-attack", "external_id": "TA0004", "url": "u"}],
        },
    )
    (cti / "LICENSE.txt").write_text(
        'ATT&CK\n===\nLicense\n-------\nreproduce this.\n\n"© 2099 The MITRE Corporation. Reproduced."\n\nCAPEC\n'
    )
    env = os.environ | {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_COMMITTER_DATE": "2099-01-02T00:00:00Z",
    }
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "ATT&CK v99.1 Enterprise"]):
        subprocess.run(["git", "-C", str(cti), *cmd], check=True, env=env)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"entries": [{"technique": "T1055.008", "syscalls": ["ptrace"], "reason": "x."}]}))

    def run(out: Path) -> bytes:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts/make-attack-data"),
                str(cti),
                "--mapping",
                str(mapping),
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()

    first, second = run(tmp_path / "one.json"), run(tmp_path / "two.json")
    assert first == second
    data = json.loads(first)
    assert data["source"]["attack_version"] == "99.1" and data["source"]["commit_date"] == "2099-01-02"
    assert data["source"]["licence"]["copyright"] == "© 2099 The MITRE Corporation. Reproduced."
    assert [(t["id"], t["platform_containers"]) for t in data["techniques"]] == [("T1055.008", False), ("T1611", True)]
    assert data["techniques"][0]["parent_name"] == "Process Injection"
    assert data["tactics"] == {"privilege-escalation": {"id": "TA0004", "name": "Privilege Escalation"}}

    mapping.write_text(json.dumps({"entries": [{"technique": "T1999", "syscalls": ["x"], "reason": "x."}]}))
    failed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/make-attack-data"),
            str(cti),
            "--mapping",
            str(mapping),
            "--out",
            str(tmp_path / "three.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0 and "T1999" in failed.stderr
