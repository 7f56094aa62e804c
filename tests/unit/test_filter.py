"""The one seccomp evaluator (tracer.profile.filter): its action table, question by question,
and every user of profiles (risk, report, verify, diff, generate) agreeing with it on every
fixture profile, the profiles generated from every fixture trace, and Docker's default."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
from pathlib import Path

import pytest

from support.paths import FIXTURES, REPO
from tracer.profile.against import compare, kernel_values
from tracer.profile.diff import diff
from tracer.profile.filter import (
    UNCONFINED,
    filter_from_docker,
    filter_from_oci,
    filter_from_profile,
    load_docker_default,
)
from tracer.profile.generate import ProfileOptions, plan_profile, write_profile_dir
from tracer.profile.validate import check_seccomp
from tracer.report.model import build_report
from tracer.risk import attack
from tracer.syscalls import syscall_name_known, syscall_table
from tracer.trace.format import PROFILE_PHASES, Snapshot, load_trace
from tracer.verify.run import DANGEROUS_SYSCALLS, argument_refusals, find_refusals, refusal_errnos

X86 = "SCMP_ARCH_X86_64"
TRACES = sorted(FIXTURES.glob("*.trace.json"))
MINI_NIM_TRACE = FIXTURES / "mini-nim.trace.json"


def one_rule(action: str, default: str = "SCMP_ACT_ERRNO", **extra) -> dict:
    return {
        "defaultAction": default,
        "architectures": [X86],
        "syscalls": [{"names": ["mount"], "action": action, **extra}],
    }


# ---------------------------------------------------------------- the action table, one row per action

# action: (a recorded call ran, the errno it got, a caller may get it through)
ACTION_ROWS = {
    "SCMP_ACT_ALLOW": (True, None, True),
    "SCMP_ACT_LOG": (True, None, True),
    "SCMP_ACT_ERRNO": (False, errno.EPERM, False),
    "SCMP_ACT_TRACE": (False, errno.ENOSYS, True),  # no tracer: ENOSYS; a tracer of its own may let it run
    "SCMP_ACT_NOTIFY": (False, errno.ENOSYS, True),  # no listener: ENOSYS; a supervisor may let it run
    "SCMP_ACT_TRAP": (False, None, False),
    "SCMP_ACT_KILL": (False, None, False),
    "SCMP_ACT_KILL_THREAD": (False, None, False),
    "SCMP_ACT_KILL_PROCESS": (False, None, False),
}


@pytest.mark.parametrize("action", ACTION_ROWS)
def test_a_rules_action_answers_each_question(action):
    ran, got, passes = ACTION_ROWS[action]
    f = filter_from_oci(one_rule(action))
    assert f.allows("mount") is ran
    assert f.verdict("mount").returned_errno == got
    assert f.may_pass("mount") is passes
    assert ("mount" in f.names_allowed()) is ran
    assert ("mount" in f.names_enosys()) is (got == errno.ENOSYS)


@pytest.mark.parametrize("action", ACTION_ROWS)
def test_the_default_action_answers_each_question(action):
    ran, got, passes = ACTION_ROWS[action]
    f = filter_from_oci({"defaultAction": action, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})
    assert (f.allows("mount"), f.verdict("mount").returned_errno, f.may_pass("mount")) == (ran, got, passes)
    assert f.allows("read") and f.may_pass("read")


def test_errno_is_errno_ret_else_the_default_errno():
    assert (
        filter_from_oci(one_rule("SCMP_ACT_ERRNO", errnoRet=errno.EACCES)).verdict("mount").returned_errno
        == errno.EACCES
    )
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EACCES, "syscalls": []}
    assert filter_from_oci(profile).verdict("mount").returned_errno == errno.EACCES
    assert filter_from_oci(one_rule("SCMP_ACT_TRACE", errnoRet=7)).verdict("mount").returned_errno == errno.ENOSYS


def test_an_action_the_table_does_not_know_is_refused_when_recorded_and_open_to_risk():
    f = filter_from_oci(one_rule("SCMP_ACT_SOMETHING_NEW"))
    assert not f.allows("mount") and f.may_pass("mount")


KERNEL_ORDER = (
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_ALLOW",
)


@pytest.mark.parametrize("stronger, weaker", list(itertools.combinations(KERNEL_ORDER, 2)))
def test_of_two_matching_rules_the_kernels_precedence_decides(stronger, weaker):
    for first, second in ((stronger, weaker), (weaker, stronger)):
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": first}, {"names": ["mount"], "action": second}],
        }
        assert filter_from_oci(profile).verdict("mount").action == stronger


def test_conditions_the_caller_chooses_are_its_way_through():
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 17, "op": "SCMP_CMP_EQ"}]}
        ],
    }
    f = filter_from_oci(profile)
    assert f.may_pass("socket") and f.may_pass("socket", {0: 2}) and not f.may_pass("socket", {0: 17})
    assert f.allows("socket", {0: 2}) and not f.allows("socket", {0: 17})


def test_docker_includes_and_excludes_are_checked_once_for_every_user():
    docker = load_docker_default()
    without, with_admin = (filter_from_docker(docker, caps, X86) for caps in ((), ["SYS_ADMIN"]))
    assert not without.may_pass("mount") and with_admin.may_pass("mount")
    assert without.verdict("clone3").returned_errno == errno.ENOSYS and with_admin.allows("clone3")
    assert filter_from_profile(docker, ["cap_sys_admin"], X86).allows("mount")  # any spelling of a capability
    every_rule = filter_from_docker(docker, None, X86)
    assert "with CAP_SYS_ADMIN" in {rule.requirement for rule in every_rule.rules_for("mount")}
    assert not filter_from_docker(docker, (), "SCMP_ARCH_AARCH64").rules_for("arch_prctl")  # an x86-only rule


# ---------------------------------------------------------------- every user agrees with the Filter


def _docker_default_as_oci() -> dict:
    """Docker's default for containerd's default capabilities on x86_64, as the OCI profile runc gets
    (without the names this libseccomp does not know yet)."""
    f = filter_from_docker(load_docker_default(), attack.RUNTIME_DEFAULT_CAPABILITIES, X86)
    known = [(rule, [name for name in names if syscall_name_known(name, f.architectures)]) for rule, names in f.listed]
    return {
        "defaultAction": f.default.action,
        "defaultErrnoRet": f.default.errno,
        "architectures": list(f.architectures),
        "syscalls": [rule.to_oci(*names) for rule, names in known if names],
    }


def _with_trace_and_notify(seccomp: dict) -> dict:
    """The committed profile, with the calls of an escape handed to a tracer or a supervisor."""
    return {
        **seccomp,
        "syscalls": [
            *seccomp["syscalls"],
            {"names": ["mount", "ptrace"], "action": "SCMP_ACT_TRACE"},
            {"names": ["unshare", "bpf"], "action": "SCMP_ACT_NOTIFY"},
        ],
    }


def _cases() -> list[tuple[str, dict, object]]:
    committed = json.loads((REPO / "profiles/mini-nim/seccomp.json").read_text())
    cases = [(f"generated from {trace.name}", plan_profile([load_trace(trace)]).seccomp, trace) for trace in TRACES]
    cases += [
        (f"profiles/{path.parent.name}", json.loads(path.read_text()), MINI_NIM_TRACE)
        for path in sorted((REPO / "profiles").glob("*/seccomp.json"))
    ]
    cases += [
        ("Docker's default", _docker_default_as_oci(), MINI_NIM_TRACE),
        ("TRACE and NOTIFY", _with_trace_and_notify(committed), MINI_NIM_TRACE),
    ]
    return cases


CASES = _cases()


@pytest.fixture(params=CASES, ids=[name for name, _, _ in CASES])
def case(request, tmp_path):
    """A profile directory holding the case's profile, its Filter, and a trace to hold against it."""
    name, seccomp, trace_path = request.param
    check_seccomp(name, seccomp)  # every case is a profile runc would load
    draft = dataclasses.replace(plan_profile([load_trace(trace_path)]), seccomp=seccomp)
    write_profile_dir(draft, tmp_path / "profile")
    return tmp_path / "profile", filter_from_oci(seccomp), load_trace(trace_path)


def _on_arch() -> set[str]:
    return set(syscall_table(X86).values())


def test_risk_agrees(case):
    directory, f, _ = case
    ours = attack.Confinement.from_profile_dir(directory)
    routes = {
        (technique.technique.id, route.name)
        for technique in attack.reachable_techniques(ours.seccomp, ours.capabilities)
        for route in technique.routes
        if route.kind == "syscall"
    }
    for entry in attack.load_mapping():
        for name in entry.syscalls if not entry.when else ():
            assert ((entry.technique, name) in routes) is f.may_pass(name), (entry.technique, name)
    for technique in attack.closed_techniques(ours):
        for route, closed_by in zip(technique.baseline_routes, technique.closed_by):
            if route.kind == "syscall" and closed_by.startswith(f"{route.name} refused"):
                assert not f.may_pass(route.name), closed_by  # "refused" in one place, open in another: never
    comparison = compare(f, UNCONFINED, X86)
    assert set(comparison.refused) == {name for name in _on_arch() if not f.may_pass(name)}


def test_report_agrees(case):
    directory, f, trace = case
    report = build_report(directory, trace.source)
    ours = attack.Confinement.from_profile_dir(directory)
    risk = {t.technique.id for t in attack.reachable_techniques(ours.seccomp, ours.capabilities)}
    assert {row.technique.id for row in report.attack.reachable} == risk
    runtime = filter_from_docker(load_docker_default(), ours.capabilities, X86)
    assert set(report.runtime_default.refused_here) == {
        name for name in _on_arch() if runtime.may_pass(name) and not f.may_pass(name)
    }
    for bar in report.activity.bars:
        recorded_call_goes_on = f.allows_anything(bar.name) or f.verdict(bar.name).returned_errno == errno.ENOSYS
        assert bar.allowed is recorded_call_goes_on, bar.name
    assert set(report.profile.allowed) == {name for name in f.names() if f.allows_anything(name)}


def test_verify_refusal_check_agrees(case):
    directory, f, trace = case
    seccomp = json.loads((directory / "seccomp.json").read_text())
    refusals = refusal_errnos(f)
    for name in DANGEROUS_SYSCALLS:
        if not f.allows_anything(name) and f.verdict(name).returned_errno is not None:
            assert f.verdict(name).returned_errno in refusals, name  # the probe's errno reads as refused
    refused, fallbacks = find_refusals(Snapshot.empty(), trace.final, trace.arch, seccomp, {})
    for refusal in refused:
        if refusal.kind == "syscall":
            assert not f.allows_anything(refusal.name) and refusal.name not in fallbacks
    for name in fallbacks:
        assert f.verdict(name).returned_errno == errno.ENOSYS
    refused_rows = {(r.syscall, r.phase, r.count) for r in argument_refusals(trace.arguments, seccomp)}
    for row in trace.arguments.in_phases(PROFILE_PHASES).rows:
        if f.indices(row.syscall) and f.allows_anything(row.syscall) and row.arguments():
            refused = (row.syscall, row.phase, row.count) in refused_rows
            assert refused is not f.allows(row.syscall, kernel_values(row.syscall, row)), row


def test_diff_agrees(case):
    directory, f, trace = case
    result = diff(directory, Path(trace.source))
    draft = plan_profile([trace], ProfileOptions(allow_incomplete=True))
    falls_back = {name for name in draft.fallback_names if f.verdict(name).returned_errno == errno.ENOSYS}
    assert (
        set(result.added_syscalls)
        == {name for name in draft.syscalls.allowed if not f.allows_anything(name)} - falls_back
    )


def test_generate_agrees():
    for trace_path in TRACES:
        trace = load_trace(trace_path)
        draft = plan_profile([trace])
        f = draft.filter
        for name in draft.syscalls.allowed:
            assert f.allows_anything(name) or name in draft.fallback_names, name
        for name in draft.fallback_names:
            assert f.verdict(name).returned_errno == errno.ENOSYS, name
        for row in trace.arguments.in_phases(PROFILE_PHASES).rows:
            if row.errno == 0 and row.arguments() and row.syscall not in draft.fallback_names:
                assert f.allows(row.syscall, kernel_values(row.syscall, row)), row
        against = draft.against_runtime_default()
        assert against.allowed == sum(f.may_pass(name) for name in _on_arch() & f.names())
