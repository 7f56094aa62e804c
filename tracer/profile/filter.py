"""A seccomp profile as a filter that can be asked questions: what does it do with this call?

Profiles come in two formats: the OCI runtime-spec `LinuxSeccomp` (what runc and the
kubelet load, what `generate` writes) and Docker's own (moby's default profile, with rules
that apply only `includes`/`excludes` some capabilities or architectures). Both become a
`Filter`: per syscall name, rules with an action and argument conditions, and a default.
Conditions compare the 64-bit argument registers, as libseccomp does: all conditions of one
rule must hold (AND); several rules for one name are alternatives (OR).

A filter answers two questions apart, because the actions TRACE and NOTIFY answer them
differently (see ACTIONS):
- what happened to a recorded call, every argument known, with no tracer or supervisor
  attached (`verdict`, `allows`, `allows_anything`): the call ran, or failed with an errno,
  or the process got SIGSYS or was killed;
- whether a caller who chooses some arguments, and may arrange a tracer or supervisor of its
  own, can get a call through (`may_pass`): what risk and the comparison with a baseline ask.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tracer.arch import docker_name
from tracer.capabilities import normalise_capability
from tracer.errors import InputError
from tracer.files import read_json

U64 = (1 << 64) - 1
ALLOW, LOG, ERRNO = "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_ERRNO"
KILL_PROCESS = "SCMP_ACT_KILL_PROCESS"


@dataclass(frozen=True)
class Action:
    """What the kernel does with a call a seccomp action applies to (seccomp(2))."""

    name: str
    precedence: int  # when several rules match, the lowest wins, as in the kernel
    runs: bool  # a recorded call ran (no tracer or supervisor was attached)
    passes: bool  # a caller may get the call through, with a tracer or supervisor of its own
    enosys: bool = False  # a recorded call failed with ENOSYS, whatever the rule's errnoRet says
    takes_errno: bool = False  # errnoRet means something (ERRNO: the errno; TRACE: the tracer's message)


# The kernel's precedence: KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF > TRACE > LOG > ALLOW.
ACTIONS = {
    action.name: action
    for action in (
        Action(KILL_PROCESS, 0, runs=False, passes=False),  # the process is killed
        Action("SCMP_ACT_KILL_THREAD", 1, runs=False, passes=False),  # the thread is killed
        Action("SCMP_ACT_KILL", 1, runs=False, passes=False),  # libseccomp's old name for KILL_THREAD
        Action("SCMP_ACT_TRAP", 2, runs=False, passes=False),  # SIGSYS
        # Fails with errnoRet (EPERM unless the profile says).
        Action(ERRNO, 3, runs=False, passes=False, takes_errno=True),
        # No listener: the call fails with ENOSYS; with a supervisor, the supervisor decides.
        Action("SCMP_ACT_NOTIFY", 4, runs=False, passes=True, enosys=True),
        # No tracer (ptrace's PTRACE_O_TRACESECCOMP): the call fails with ENOSYS; with one, the tracer
        # decides, and a process that may ptrace (its own child) can be that tracer.
        Action("SCMP_ACT_TRACE", 5, runs=False, passes=True, enosys=True, takes_errno=True),
        Action(LOG, 6, runs=True, passes=True),  # runs, and the kernel logs it
        Action(ALLOW, 7, runs=True, passes=True),
    )
}
# An action this table does not know (a newer kernel's): refused for a recorded call, but a way
# through for risk, which fails closed; below every known action in precedence.
UNKNOWN_ACTION = Action("unknown", len(ACTIONS), runs=False, passes=True)
ERRNO_ACTIONS = tuple(sorted(name for name, action in ACTIONS.items() if action.takes_errno))

OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
DOCKER_DEFAULT = Path(__file__).with_name("data") / "docker-default-seccomp.json"


def action_of(name: str) -> Action:
    return ACTIONS.get(name, UNKNOWN_ACTION)


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
        return {
            "SCMP_CMP_NE": x != self.value,
            "SCMP_CMP_LT": x < self.value,
            "SCMP_CMP_LE": x <= self.value,
            "SCMP_CMP_EQ": x == self.value,
            "SCMP_CMP_GE": x >= self.value,
            "SCMP_CMP_GT": x > self.value,
        }[self.op]

    def may_hold(self, known: Mapping[int, int]) -> bool:
        """Whether a caller can make it hold: an argument not in `known` is the caller's to choose."""
        return self.index not in known or self.holds(known[self.index])

    def surely_holds(self, known: Mapping[int, int]) -> bool:
        """Whether it holds whatever the caller does with the arguments not in `known`."""
        return self.index in known and self.holds(known[self.index])

    def to_oci(self) -> dict:
        arg = {"index": self.index, "value": self.value, "op": self.op}
        if self.op == "SCMP_CMP_MASKED_EQ":
            arg["valueTwo"] = self.value_two
        return arg


@dataclass(frozen=True)
class Rule:
    action: str
    conditions: tuple[Condition, ...] = ()
    errno: int | None = None  # errnoRet as the profile says it (for ERRNO without one, the default's)
    requirement: str = ""  # Docker's format: what the rule asks of the container ("with CAP_SYS_ADMIN")

    @property
    def effect(self) -> Action:
        return action_of(self.action)

    @property
    def allows(self) -> bool:
        """A recorded call this rule decides ran."""
        return self.effect.runs

    @property
    def passes(self) -> bool:
        """A caller may get a call this rule decides through."""
        return self.effect.passes

    @property
    def returned_errno(self) -> int | None:
        """The errno a recorded call this rule decides got; None when it ran or a signal ended it."""
        if self.effect.enosys:
            return errno.ENOSYS
        if self.action == ERRNO:
            return errno.EPERM if self.errno is None else self.errno
        return None

    def matches(self, args: Mapping[int, int]) -> bool:
        return all(c.holds(args.get(c.index, 0)) for c in self.conditions)

    def may_match(self, known: Mapping[int, int]) -> bool:
        return all(c.may_hold(known) for c in self.conditions)

    def surely_matches(self, known: Mapping[int, int]) -> bool:
        return all(c.surely_holds(known) for c in self.conditions)

    def to_oci(self, *names: str) -> dict:
        rule = {"names": list(names), "action": self.action}
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
    listed: list[tuple[Rule, tuple[str, ...]]] = field(default_factory=list)  # the profile's rules, in its order

    def rules_for(self, name: str) -> list[Rule]:
        return self.rules.get(name, [])

    # -- what happened to a recorded call (no tracer, no supervisor)

    def verdict(self, name: str, args: Mapping[int, int] | None = None) -> Rule:
        """The rule that decides this call, every argument known (the default when none matches)."""
        matching = [rule for rule in self.rules_for(name) if rule.matches(args or {})]
        if not matching:
            return self.default
        return min(matching, key=lambda rule: rule.effect.precedence)

    def allows(self, name: str, args: Mapping[int, int] | None = None) -> bool:
        return self.verdict(name, args).allows

    def allows_anything(self, name: str) -> bool:
        """Whether some call of `name` runs, for some arguments."""
        return self.default.allows or any(rule.allows for rule in self.rules_for(name))

    # -- what a caller can get through

    def may_pass(self, name: str, known: Mapping[int, int] | None = None) -> bool:
        """Can a caller get `name` through with these argument values (index -> value; the others
        are its to choose), a tracer or supervisor of its own included? Failing closed, a passing
        rule the call may match wins over a refusing rule it surely matches."""
        known = dict(known or {})
        rules = self.rules_for(name)
        if any(rule.passes and rule.may_match(known) for rule in rules):
            return True
        refused = any(not rule.passes and rule.surely_matches(known) for rule in rules)
        return not refused and self.default.passes

    def refusal(self, name: str) -> Rule:
        """The rule that refuses `name` outright: one without conditions, else the default."""
        return next((rule for rule in self.rules_for(name) if not rule.passes and not rule.conditions), self.default)

    # -- the names

    def indices(self, name: str) -> set[int]:
        return {c.index for rule in self.rules_for(name) for c in rule.conditions}

    def names(self) -> set[str]:
        return set(self.rules)

    def names_allowed(self) -> set[str]:
        """Names a rule lets run (some only with the arguments the rule names)."""
        return {name for name, rules in self.rules.items() if any(rule.allows for rule in rules)}

    def names_conditioned(self) -> set[str]:
        """Names allowed only with some arguments (no rule lets them run unconditionally)."""
        return {
            name
            for name, rules in self.rules.items()
            if any(rule.allows and rule.conditions for rule in rules)
            and not any(rule.allows and not rule.conditions for rule in rules)
        }

    def names_enosys(self) -> set[str]:
        """Names a rule answers ENOSYS (clone3: glibc and Go then fall back to clone)."""
        return {
            name for name, rules in self.rules.items() if any(rule.returned_errno == errno.ENOSYS for rule in rules)
        }


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
        conditions.append(
            Condition(
                index,
                arg["op"],
                _int(source, f"{at}.value", arg.get("value"), 0),
                _int(source, f"{at}.valueTwo", arg.get("valueTwo"), 0),
            )
        )
    return tuple(conditions)


def _names(source, where: str, rule: dict) -> list[str]:
    names = rule.get("names") or ([rule["name"]] if isinstance(rule.get("name"), str) else None)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(source, f"{where} must have 'names': a list of syscall names")
    return names


def _rule(source, where: str, rule: dict, default_errno: int | None, requirement: str = "") -> Rule:
    action = rule.get("action")
    if not isinstance(action, str):
        raise InputError(source, f"{where} must have 'action': a string")
    errno_ret = rule.get("errnoRet", default_errno if action == ERRNO else None)
    return Rule(action, _conditions(source, where, rule.get("args")), errno_ret, requirement)


def _default(source, profile: dict) -> tuple[Rule, int | None]:
    action = profile.get("defaultAction")
    if not isinstance(action, str):
        raise InputError(source, "'defaultAction' must be a string such as SCMP_ACT_ERRNO")
    errno_ret = profile.get("defaultErrnoRet", errno.EPERM if action == ERRNO else None)
    return Rule(action, (), errno_ret), errno_ret


def _raw_rules(source, profile: dict):
    for i, raw in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{i}]"
        if not isinstance(raw, dict):
            raise InputError(source, f"{where} must be an object")
        yield where, raw


def _add(f: Filter, rule: Rule, names: list[str]) -> None:
    f.listed.append((rule, tuple(names)))
    for name in names:
        f.rules.setdefault(name, []).append(rule)


def filter_from_oci(profile: dict, source: str | None = None) -> Filter:
    """An OCI LinuxSeccomp object: every rule applies."""
    default, default_errno = _default(source, profile)
    f = Filter(default, architectures=tuple(profile.get("architectures") or ()))
    for where, raw in _raw_rules(source, profile):
        _add(f, _rule(source, where, raw, default_errno), _names(source, where, raw))
    return f


def is_docker_format(profile: dict) -> bool:
    return "archMap" in profile or any(
        isinstance(r, dict) and ("includes" in r or "excludes" in r) for r in profile.get("syscalls") or []
    )


def filter_from_docker(
    profile: dict,
    capabilities: Iterable[str] | None,
    oci_arch: str,
    kernel: tuple[int, int] | None = None,
    source: str | None = None,
) -> Filter:
    """Docker's format, evaluated as moby does for a container with these capabilities on
    this architecture: a rule applies when every capability it `includes` is held, none it
    `excludes` is, and the architecture is in its `includes.arches` and not its `excludes`.
    `minKernel` rules apply unless the kernel is known to be older. With capabilities None,
    every rule of the architecture applies, each with its `requirement` in words."""
    default, default_errno = _default(source, profile)
    held = None if capabilities is None else {normalise_capability(c) for c in capabilities}
    arch = docker_name(oci_arch)
    f = Filter(default, architectures=docker_architectures(profile, oci_arch))
    for where, raw in _raw_rules(source, profile):
        includes, excludes = raw.get("includes") or {}, raw.get("excludes") or {}
        if _applies(includes, excludes, held, arch, kernel):
            _add(
                f,
                _rule(source, where, raw, default_errno, _requirement(includes, excludes)),
                _names(source, where, raw),
            )
    return f


def _applies(includes: dict, excludes: dict, held: set[str] | None, arch: str, kernel) -> bool:
    """Docker's `includes`/`excludes`: capabilities (unless `held` is None), architectures, kernel."""
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    if held is not None:
        if includes.get("caps") and not {normalise_capability(c) for c in includes["caps"]} <= held:
            return False
        if excludes.get("caps") and {normalise_capability(c) for c in excludes["caps"]} & held:
            return False
    if includes.get("minKernel") and kernel is not None:
        return kernel >= parse_kernel_version(includes["minKernel"])
    return True


def _requirement(includes: dict, excludes: dict) -> str:
    """What a Docker rule asks of the container: capabilities, a kernel, or nothing."""
    if includes.get("caps"):
        return f"with {', '.join(includes['caps'])}"
    if excludes.get("caps"):
        return f"without {', '.join(excludes['caps'])}"
    if includes.get("minKernel"):
        return f"from kernel {includes['minKernel']}"
    return ""


def filter_from_profile(
    profile: dict,
    capabilities: Iterable[str] = (),
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
    source: str | None = None,
) -> Filter:
    """Either format; Docker's evaluated for these capabilities on `arch` (default: the profile's own)."""
    if is_docker_format(profile):
        return filter_from_docker(profile, capabilities, arch or profile_arch(profile), kernel, source)
    return filter_from_oci(profile, source)


def profile_arch(profile: dict) -> str:
    """A profile's first architecture (OCI `architectures`, Docker `archMap`), x86_64 if it names none."""
    arches = profile.get("architectures") or [entry.get("architecture") for entry in profile.get("archMap") or []]
    return arches[0] if arches and arches[0] else "SCMP_ARCH_X86_64"


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


UNCONFINED = Filter(Rule(ALLOW))
