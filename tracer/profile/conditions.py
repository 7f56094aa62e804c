"""Argument conditions from evidence: allow a dangerous syscall only with the values recorded.

The recorder saw the arguments that decide danger (tracer.trace.arguments). Per syscall name the
profile gets OCI rules with `args`, as runc hands them to libseccomp (conditions inside one
rule are ANDed, rules of one name ORed; no rule compares one argument twice, which some
libseccomp versions get wrong silently):

- clone: only the namespace flags seen (a MASKED_EQ on the namespace bits, one rule per set
  seen, always including "none", which runc's and Go's thread creation needs);
- clone3: answers ENOSYS, so glibc and Go fall back to clone, whose flags seccomp can see;
  only when the recording shows clone3 with flags clone cannot express is it allowed, loudly;
- unshare, setns: only the flags / namespace types seen;
- socket, socketpair: only the families seen, and for AF_NETLINK only the protocols seen;
- personality, prctl: only the values seen;
- ioctl: the request numbers seen, only when asked (terminal state differs between
  environments, so the requests a recording sees are not a stable contract).

32-bit arguments (families, protocols, personas, options, requests) are compared on their low
32 bits (MASKED_EQ with mask 0xffffffff): the kernel reads only those, and a caller may pass
them sign-extended (personality(0xffffffff), NVIDIA's 0xc0... requests), which an EQ on the
64-bit register would refuse.

A trace without argument data (format version 1) gets the runtime default's conditions for
the names it conditions (clone, clone3, socket, personality), never bare names.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from tracer.argnames import (
    AF_NETLINK,
    CLONE_NAMESPACE_FLAGS,
    CLONE_NEWTIME,
    NAMESPACE_FLAGS,
    SETNS_TYPES,
    clone_namespaces,
    flag_names,
    ioctl_name,
    personality_name,
    prctl_name,
    socket_name,
)
from tracer.profile.filter import ALLOW, Condition, Filter, Rule
from tracer.syscalls import syscall_number
from tracer.trace.arguments import ArgumentRow, Arguments
from tracer.trace.format import PROFILE_PHASES

LOW32 = 0xFFFFFFFF
CONDITIONED = ("clone", "clone3", "unshare", "setns", "socket", "socketpair", "personality", "prctl", "ioctl")


def low32(index: int, value: int) -> Condition:
    return Condition(index, "SCMP_CMP_MASKED_EQ", LOW32, value & LOW32)


def clone_flags_index(arch: str) -> int:
    return 1 if arch == "SCMP_ARCH_S390X" else 0


@dataclass(frozen=True)
class ConditionalRule:
    """One allow rule for one syscall, and what in the recording asked for it."""

    syscall: str
    conditions: tuple[Condition, ...]
    allows: str  # for people: "AF_NETLINK NETLINK_ROUTE"
    evidence: tuple[ArgumentRow, ...] = ()

    def to_oci(self) -> dict:
        return Rule(ALLOW, self.conditions).to_oci(self.syscall)


@dataclass
class ArgumentPolicy:
    """What argument conditions do to a profile's allow-list."""

    rules: list[ConditionalRule] = field(default_factory=list)
    conditioned: set[str] = field(default_factory=set)  # names no longer allowed unconditionally
    enosys: set[str] = field(default_factory=set)  # names answered ENOSYS instead
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, syscall: str, rules: list[ConditionalRule], note: str | None = None) -> None:
        self.conditioned.add(syscall)
        self.rules.extend(rules)
        if note:
            self.notes.append(note)


def argument_policy(
    arch: str,
    allowed: set[str],
    arguments: Arguments | None,
    runtime: Filter,
    *,
    ioctl_requests: bool = False,
    source: str | None = None,
) -> ArgumentPolicy:
    """The conditions for the allowed names, from the recorded arguments (profile phases)."""
    policy = ArgumentPolicy()
    recorded = arguments.in_phases(PROFILE_PHASES) if arguments is not None else None
    for syscall in CONDITIONED:
        if syscall not in allowed or (syscall == "ioctl" and not ioctl_requests):
            continue
        if (
            recorded is not None
            and recorded.knows(syscall)
            and (_rows(recorded, syscall) or syscall in ("clone", "clone3"))
        ):
            FROM_EVIDENCE[syscall](policy, arch, recorded, runtime)
        else:  # allowed without recorded values (a complain-mode log, a version 1 trace)
            from_runtime_default(policy, syscall, runtime)
    if arguments is None and allowed & set(CONDITIONED):
        policy.warnings.append(
            f"{source or 'the trace'} has no argument data (trace format version 1): the "
            "runtime default's conditions are used where it has any; record again to narrow them"
        )
    if "clone" in allowed and "clone3" not in allowed | policy.enosys and syscall_number(arch, "clone3") is not None:
        policy.enosys.add("clone3")  # glibc tries clone3 first and falls back to clone on ENOSYS only
    return policy


def from_runtime_default(policy: ArgumentPolicy, syscall: str, runtime: Filter) -> None:
    """No recorded values: the runtime default's own rules for this name, if it has any."""
    rules = runtime.rules_for(syscall)
    if any(not rule.conditions and rule.returned_errno == errno.ENOSYS for rule in rules):
        policy.enosys.add(syscall)
        policy.conditioned.add(syscall)
        policy.notes.append(f"{syscall}: ENOSYS, as the runtime default (no recorded arguments)")
        return
    conditional = [rule for rule in rules if rule.allows and rule.conditions]
    if conditional and not any(rule.allows and not rule.conditions for rule in rules):
        policy.add(
            syscall,
            [ConditionalRule(syscall, rule.conditions, "as the runtime default") for rule in conditional],
            f"{syscall}: the runtime default's conditions (no recorded arguments)",
        )


def _rows(arguments: Arguments, syscall: str) -> list[ArgumentRow]:
    return arguments.of(syscall, PROFILE_PHASES)


def _grouped(rows, key) -> dict:
    groups: dict = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return dict(sorted(groups.items()))


def clone_rules(policy: ArgumentPolicy, arch: str, arguments: Arguments, runtime: Filter) -> None:
    index = clone_flags_index(arch)
    rows = _rows(arguments, "clone") + [row for row in _rows(arguments, "clone3") if _expressible(row)]
    groups = {0: [], **_grouped(rows, lambda row: row["flags"] & CLONE_NAMESPACE_FLAGS)}
    rules = [
        ConditionalRule(
            "clone",
            (Condition(index, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, ns),),
            clone_namespaces(ns),
            tuple(evidence),
        )
        for ns, evidence in sorted(groups.items())
    ]
    seen = [ns for ns in groups if ns]
    policy.add(
        "clone",
        rules,
        "clone: "
        + (
            "namespace flags " + ", ".join(clone_namespaces(ns) for ns in seen)
            if seen
            else "no namespace flags (CLONE_NEW* masked to zero)"
        ),
    )


def _expressible(row: ArgumentRow) -> bool:
    """Whether clone could make this clone3 call (its flags fit clone's, no CLONE_NEWTIME)."""
    flags = row["flags"]
    return flags is not None and flags >> 32 == 0 and not flags & CLONE_NEWTIME


def clone3_rules(policy: ArgumentPolicy, arch: str, arguments: Arguments, runtime: Filter) -> None:
    needed = [
        row
        for row in _rows(arguments, "clone3")
        if row["flags"] is not None and not _expressible(row) and row.errno == 0
    ]
    if not needed:
        policy.enosys.add("clone3")
        policy.conditioned.add("clone3")
        policy.notes.append("clone3: ENOSYS, so that glibc and Go fall back to clone, whose flags the filter sees")
        return
    flags = sorted({row["flags"] for row in needed})
    policy.warnings.append(
        "clone3 is ALLOWED: the recording shows it with flags clone cannot express ("
        + ", ".join(
            flag_names(f, {**NAMESPACE_FLAGS, 0x100000000: "CLONE_CLEAR_SIGHAND", 0x200000000: "CLONE_INTO_CGROUP"})
            for f in flags
        )
        + "). seccomp cannot read clone3's flags: this profile lets the workload create any namespace through clone3."
    )


def _value_rules(syscall: str, index: int, field_name: str, describe):
    def build(policy: ArgumentPolicy, arch: str, arguments: Arguments, runtime: Filter) -> None:
        groups = _grouped(_rows(arguments, syscall), lambda row: row[field_name] & LOW32)
        rules = [
            ConditionalRule(syscall, (low32(index, value),), describe(value), tuple(rows))
            for value, rows in groups.items()
        ]
        policy.add(syscall, rules, f"{syscall}: " + ", ".join(describe(v) for v in groups))

    return build


def unshare_rules(policy: ArgumentPolicy, arch: str, arguments: Arguments, runtime: Filter) -> None:
    groups = _grouped(_rows(arguments, "unshare"), lambda row: row["flags"])
    rules = [
        ConditionalRule("unshare", (Condition(0, "SCMP_CMP_EQ", flags),), _unshare_name(flags), tuple(rows))
        for flags, rows in groups.items()
    ]
    policy.add("unshare", rules, "unshare: " + ", ".join(map(_unshare_name, groups)))


def _unshare_name(flags: int) -> str:
    return flag_names(flags, {**NAMESPACE_FLAGS, 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x40000: "CLONE_SYSVSEM"})


def socket_rules(syscall: str):
    def build(policy: ArgumentPolicy, arch: str, arguments: Arguments, runtime: Filter) -> None:
        rows = _rows(arguments, syscall)
        rules, seen = [], []
        for family, family_rows in _grouped(rows, lambda row: row["family"] & LOW32).items():
            if family != AF_NETLINK:
                rules.append(ConditionalRule(syscall, (low32(0, family),), socket_name(family), tuple(family_rows)))
                seen.append(socket_name(family))
                continue
            for protocol, protocol_rows in _grouped(family_rows, lambda row: row["protocol"] & LOW32).items():
                rules.append(
                    ConditionalRule(
                        syscall,
                        (low32(0, family), low32(2, protocol)),
                        socket_name(family, protocol),
                        tuple(protocol_rows),
                    )
                )
                seen.append(socket_name(family, protocol))
        policy.add(syscall, rules, f"{syscall}: " + ", ".join(seen))

    return build


FROM_EVIDENCE = {
    "clone": clone_rules,
    "clone3": clone3_rules,
    "unshare": unshare_rules,
    "setns": _value_rules("setns", 1, "nstype", lambda v: SETNS_TYPES.get(v, hex(v))),
    "socket": socket_rules("socket"),
    "socketpair": socket_rules("socketpair"),
    "personality": _value_rules("personality", 0, "persona", personality_name),
    "prctl": _value_rules("prctl", 0, "option", prctl_name),
    "ioctl": _value_rules("ioctl", 1, "request", ioctl_name),
}
