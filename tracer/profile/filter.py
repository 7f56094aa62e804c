"""A seccomp profile as a filter that can be asked questions: what does it do with this call?

Profiles come in two formats: the OCI runtime-spec `LinuxSeccomp` (what runc and the
kubelet load, what `generate` writes) and Docker's own (moby's default profile, with rules
that apply only `includes`/`excludes` some capabilities or architectures). Both become a
`Filter`: per syscall name, rules with an action and argument conditions, and a default.
Conditions compare the 64-bit argument registers, as libseccomp does: all conditions of one
rule must hold (AND); several rules for one name are alternatives (OR).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tracer.arch import docker_name
from tracer.errors import InputError
from tracer.files import read_json

U64 = (1 << 64) - 1
ALLOWING_ACTIONS = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"})
# The kernel applies the most restrictive action when several apply; libseccomp orders a
# profile's overlapping rules the same way.
ACTION_PRECEDENCE = ("SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL", "SCMP_ACT_TRAP",
                     "SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ")
DOCKER_DEFAULT = Path(__file__).with_name("data") / "docker-default-seccomp.json"


@dataclass(frozen=True)
class Condition:
    """One OCI `args` entry. For MASKED_EQ, `value` is the mask and `value_two` the datum."""

    index: int
    op: str
    value: int
    value_two: int = 0

    def holds(self, x: int) -> bool:
        x &= U64
        if self.op == "SCMP_CMP_MASKED_EQ":
            return x & self.value == self.value_two
        return {"SCMP_CMP_NE": x != self.value, "SCMP_CMP_LT": x < self.value, "SCMP_CMP_LE": x <= self.value,
                "SCMP_CMP_EQ": x == self.value, "SCMP_CMP_GE": x >= self.value, "SCMP_CMP_GT": x > self.value}[self.op]

    def to_oci(self) -> dict:
        arg = {"index": self.index, "value": self.value, "op": self.op}
        if self.op == "SCMP_CMP_MASKED_EQ":
            arg["valueTwo"] = self.value_two
        return arg


@dataclass(frozen=True)
class Rule:
    action: str
    conditions: tuple[Condition, ...] = ()
    errno: int | None = None

    def matches(self, args: Mapping[int, int]) -> bool:
        return all(c.holds(args.get(c.index, 0)) for c in self.conditions)

    @property
    def allows(self) -> bool:
        return self.action in ALLOWING_ACTIONS

    def to_oci(self, name: str) -> dict:
        rule = {"names": [name], "action": self.action}
        if self.conditions:
            rule["args"] = [c.to_oci() for c in self.conditions]
        if self.errno is not None:
            rule["errnoRet"] = self.errno
        return rule


@dataclass
class Filter:
    default: Rule
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    architectures: tuple[str, ...] = ()

    def rules_for(self, name: str) -> list[Rule]:
        return self.rules.get(name, [])

    def verdict(self, name: str, args: Mapping[int, int] | None = None) -> Rule:
        """The rule that decides this call (the default when none matches)."""
        matching = [rule for rule in self.rules_for(name) if rule.matches(args or {})]
        if not matching:
            return self.default
        return min(matching, key=lambda rule: _precedence(rule.action))

    def allows(self, name: str, args: Mapping[int, int] | None = None) -> bool:
        return self.verdict(name, args).allows

    def indices(self, name: str) -> set[int]:
        return {c.index for rule in self.rules_for(name) for c in rule.conditions}

    def names(self) -> set[str]:
        return set(self.rules)

    def allows_anything(self, name: str) -> bool:
        """Whether some call of `name` is allowed, for some arguments."""
        return self.default.allows or any(rule.allows for rule in self.rules_for(name))


def _precedence(action: str) -> int:
    return ACTION_PRECEDENCE.index(action) if action in ACTION_PRECEDENCE else len(ACTION_PRECEDENCE)


# ---------------------------------------------------------------- reading profiles


def _int(source, where: str, value, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64:
        return value
    raise InputError(source, f"{where} must be an integer from 0 to 2^64-1")


def _conditions(source, where: str, args) -> tuple[Condition, ...]:
    if args is None:
        return ()
    if not isinstance(args, list):
        raise InputError(source, f"{where}.args must be a list")
    conditions = []
    for i, arg in enumerate(args):
        at = f"{where}.args[{i}]"
        if not isinstance(arg, dict) or arg.get("op") not in OPERATORS:
            raise InputError(source, f"{at}: 'op' must be one of {', '.join(OPERATORS)}")
        index = arg.get("index")
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise InputError(source, f"{at}: 'index' must be an argument number 0..5")
        conditions.append(Condition(index, arg["op"], _int(source, f"{at}.value", arg.get("value"), 0),
                                    _int(source, f"{at}.valueTwo", arg.get("valueTwo"), 0)))
    return tuple(conditions)


def _names(source, where: str, rule: dict) -> list[str]:
    names = rule.get("names") or ([rule["name"]] if isinstance(rule.get("name"), str) else None)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(source, f"{where} must have 'names': a list of syscall names")
    return names


def _rule(source, where: str, rule: dict, default_errno: int | None) -> Rule:
    action = rule.get("action")
    if not isinstance(action, str):
        raise InputError(source, f"{where} must have 'action': a string")
    errno = rule.get("errnoRet", default_errno if action == "SCMP_ACT_ERRNO" else None)
    return Rule(action, _conditions(source, where, rule.get("args")), errno)


def _default(source, profile: dict) -> tuple[Rule, int | None]:
    action = profile.get("defaultAction")
    if not isinstance(action, str):
        raise InputError(source, "'defaultAction' must be a string such as SCMP_ACT_ERRNO")
    errno = profile.get("defaultErrnoRet", 1 if action == "SCMP_ACT_ERRNO" else None)
    return Rule(action, (), errno), errno


def filter_from_oci(profile: dict, source: str | None = None) -> Filter:
    """An OCI LinuxSeccomp object: every rule applies."""
    default, default_errno = _default(source, profile)
    rules: dict[str, list[Rule]] = {}
    for i, raw in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{i}]"
        if not isinstance(raw, dict):
            raise InputError(source, f"{where} must be an object")
        rule = _rule(source, where, raw, default_errno)
        for name in _names(source, where, raw):
            rules.setdefault(name, []).append(rule)
    return Filter(default, rules, tuple(profile.get("architectures") or ()))


def is_docker_format(profile: dict) -> bool:
    return "archMap" in profile or any(isinstance(r, dict) and ("includes" in r or "excludes" in r)
                                       for r in profile.get("syscalls") or [])


def filter_from_docker(profile: dict, capabilities, oci_arch: str, kernel: tuple[int, int] | None = None,
                       source: str | None = None) -> Filter:
    """Docker's format, evaluated as moby does for a container with these capabilities on
    this architecture: a rule applies when every capability it `includes` is held, none it
    `excludes` is, and the architecture is in its `includes.arches` and not its `excludes`.
    `minKernel` rules apply unless the kernel is known to be older."""
    default, default_errno = _default(source, profile)
    held, arch = set(capabilities), docker_name(oci_arch)
    rules: dict[str, list[Rule]] = {}
    for i, raw in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{i}]"
        if not isinstance(raw, dict):
            raise InputError(source, f"{where} must be an object")
        if not _applies(raw.get("includes") or {}, raw.get("excludes") or {}, held, arch, kernel):
            continue
        rule = _rule(source, where, raw, default_errno)
        for name in _names(source, where, raw):
            rules.setdefault(name, []).append(rule)
    return Filter(default, rules, docker_architectures(profile, oci_arch))


def _applies(includes: dict, excludes: dict, held: set[str], arch: str, kernel) -> bool:
    if includes.get("caps") and not set(includes["caps"]) <= held:
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if excludes.get("caps") and set(excludes["caps"]) & held:
        return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    if includes.get("minKernel") and kernel is not None:
        return kernel >= parse_kernel_version(includes["minKernel"])
    return True


def docker_architectures(profile: dict, oci_arch: str) -> tuple[str, ...]:
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == oci_arch:
            return (oci_arch, *entry.get("subArchitectures", []))
    return (oci_arch,)


def parse_kernel_version(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def load_docker_default(path: Path = DOCKER_DEFAULT) -> dict:
    return read_json(path, "a Docker seccomp profile")


def runtime_default(capabilities, oci_arch: str, kernel: tuple[int, int] | None = None) -> Filter:
    """containerd's RuntimeDefault (Docker's default profile) for this container."""
    return filter_from_docker(load_docker_default(), capabilities, oci_arch, kernel, str(DOCKER_DEFAULT))


UNCONFINED = Filter(Rule("SCMP_ACT_ALLOW"))
