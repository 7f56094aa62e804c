"""Residual risk as MITRE ATT&CK techniques: which techniques a seccomp profile and capability set
leave reachable, through what, and which a profile closes compared with a baseline.

Data (package data, see tracer/risk/data/README.md):
  attack-containers.json  ATT&CK techniques of the Containers platform, made from MITRE's STIX
                          data by scripts/make-attack-data
  attack-mapping.json     the project's mapping: syscalls (optionally with argument values) and
                          capabilities -> the techniques they enable, each with its reason

A route counts as open when the profile lets it through: risk fails closed, so whatever this
module cannot decide (an unknown comparison or action) counts as allowing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from tracer.arch import docker_name
from tracer.capabilities import normalise_capability

# Values the mapping's "when" conditions name (x86_64 and aarch64 numbering). A flag set is
# written with |, e.g. "SOCK_RAW|SOCK_CLOEXEC".
ARGUMENT_VALUES = {
    # clone(2) and unshare(2) namespace flags
    "CLONE_NEWTIME": 0x00000080,  # unshare and clone3 only: in clone's flags these bits are the exit signal
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    # socket(2) families and types
    "AF_UNIX": 1,
    "AF_INET": 2,
    "AF_INET6": 10,
    "AF_NETLINK": 16,
    "AF_PACKET": 17,
    "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2,
    "SOCK_RAW": 3,
    "SOCK_PACKET": 10,
    "SOCK_NONBLOCK": 0o4000,
    "SOCK_CLOEXEC": 0o2000000,
}

# Actions under which the call goes ahead. SCMP_ACT_TRACE lets it through whenever a tracer
# is attached (one the process can arrange itself where ptrace is allowed) and SCMP_ACT_NOTIFY
# whenever the supervisor says continue: neither is a refusal this module can rely on.
REFUSING_ACTIONS = frozenset({
    "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
})

UINT64 = (1 << 64) - 1


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    tactics: tuple[str, ...]
    parent: str | None
    platform_containers: bool
    url: str


@dataclass(frozen=True)
class ArgumentCondition:
    """The argument at `index` takes one of `values` (label -> number)."""

    index: int
    values: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MappingEntry:
    technique: str
    reason: str
    syscalls: tuple[str, ...] = ()
    when: tuple[ArgumentCondition, ...] = ()
    capability: str | None = None
    with_syscalls: tuple[str, ...] = ()
    needs: str | None = None


def data_file(name: str):
    return resources.files("tracer") / "risk" / "data" / name


@cache
def load_attack_data() -> dict:
    """attack-containers.json as written by scripts/make-attack-data."""
    return json.loads(data_file("attack-containers.json").read_text())


@cache
def load_techniques() -> dict[str, Technique]:
    return {
        record["id"]: Technique(record["id"], record["name"], tuple(record["tactics"]), record["parent"],
                                record["platform_containers"], record["url"])
        for record in load_attack_data()["techniques"]
    }


def attack_version() -> str:
    return load_attack_data()["source"]["attack_version"]


def argument_value(label: str) -> int:
    """"SOCK_RAW|SOCK_CLOEXEC" -> 0x80003."""
    value = 0
    for flag in label.split("|"):
        if flag.strip() not in ARGUMENT_VALUES:
            raise ValueError(f"attack mapping: unknown argument value {flag.strip()!r} in {label!r}")
        value |= ARGUMENT_VALUES[flag.strip()]
    return value


def mapping_entry(raw: dict) -> MappingEntry:
    has_syscalls, has_capability = bool(raw.get("syscalls")), bool(raw.get("capability"))
    if has_syscalls == has_capability:
        raise ValueError(f"attack mapping: entry for {raw.get('technique')} needs either syscalls or a capability")
    when = tuple(
        ArgumentCondition(int(cond["index"]), tuple((label, argument_value(label)) for label in cond["any_of"]))
        for cond in raw.get("when", [])
    )
    return MappingEntry(raw["technique"], raw["reason"], tuple(raw.get("syscalls", ())), when,
                        raw.get("capability"), tuple(raw.get("with_syscalls", ())), raw.get("needs"))


@cache
def load_mapping() -> tuple[MappingEntry, ...]:
    entries = tuple(mapping_entry(raw) for raw in json.loads(data_file("attack-mapping.json").read_text())["entries"])
    unknown = sorted({entry.technique for entry in entries} - load_techniques().keys())
    if unknown:
        raise ValueError(f"attack mapping names techniques missing from attack-containers.json: {', '.join(unknown)}")
    return entries


def mapped_technique_ids() -> set[str]:
    return {entry.technique for entry in load_mapping()}


# ---------------------------------------------------------------- the seccomp evaluator


def action_allows(action: str | None) -> bool:
    return action not in REFUSING_ACTIONS


def compare(op: str, arg: int, value: int, value_two: int) -> bool | None:
    """libseccomp's comparison of one argument; None for an op this module does not know.
    For SCMP_CMP_MASKED_EQ the OCI `value` is the mask and `valueTwo` the datum."""
    arg, value, value_two = arg & UINT64, value & UINT64, value_two & UINT64
    match op:
        case "SCMP_CMP_EQ":
            return arg == value
        case "SCMP_CMP_NE":
            return arg != value
        case "SCMP_CMP_LT":
            return arg < value
        case "SCMP_CMP_LE":
            return arg <= value
        case "SCMP_CMP_GT":
            return arg > value
        case "SCMP_CMP_GE":
            return arg >= value
        case "SCMP_CMP_MASKED_EQ":
            return arg & value == value_two
    return None


def condition_may_hold(condition: dict, args: Mapping[int, int]) -> bool:
    """Could the caller satisfy this condition? An argument the question leaves open is the
    caller's to choose; an unknown op is assumed satisfiable."""
    index = condition.get("index")
    if index not in args:
        return True
    result = compare(condition.get("op", ""), args[index], condition.get("value", 0), condition.get("valueTwo", 0))
    return result is not False


def condition_surely_holds(condition: dict, args: Mapping[int, int]) -> bool:
    """Does this condition hold whatever the caller does with the arguments it chooses?"""
    index = condition.get("index")
    if index not in args:
        return False
    return compare(condition.get("op", ""), args[index], condition.get("value", 0), condition.get("valueTwo", 0)) is True


def profile_arch(seccomp: dict) -> str:
    arches = seccomp.get("architectures") or [entry.get("architecture") for entry in seccomp.get("archMap") or []]
    return arches[0] if arches and arches[0] else "SCMP_ARCH_X86_64"


def rule_applies(rule: dict, capabilities: Iterable[str], arch: str) -> bool:
    """Docker-style `includes`/`excludes` (caps, arches); minKernel is taken as met."""
    caps = {normalise_capability(c) for c in capabilities}
    arch_name = docker_name(arch)  # Docker's includes/excludes name architectures its own way
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if includes.get("caps") and not {normalise_capability(c) for c in includes["caps"]} <= caps:
        return False
    if includes.get("arches") and arch_name not in includes["arches"]:
        return False
    if excludes.get("caps") and {normalise_capability(c) for c in excludes["caps"]} & caps:
        return False
    return not (excludes.get("arches") and arch_name in excludes["arches"])


def rules_for(seccomp: dict, name: str, capabilities: Iterable[str] = (), arch: str | None = None) -> list[dict]:
    arch = arch or profile_arch(seccomp)
    capabilities = tuple(capabilities)
    return [
        rule for rule in seccomp.get("syscalls") or []
        if (name in (rule.get("names") or []) or rule.get("name") == name) and rule_applies(rule, capabilities, arch)
    ]


def syscall_allowed(seccomp: dict, name: str, args: Mapping[int, int] | None = None, *,
                    capabilities: Iterable[str] = (), arch: str | None = None) -> bool:
    """Can `name` be called with these argument values (index -> value; the others are the
    caller's to choose) under this profile?

    As libseccomp: the conditions of one rule must all hold, rules naming the same syscall are
    alternatives, and a call no rule matches gets the default action. Failing closed, an
    allowing rule the call may match wins over a refusing rule it surely matches."""
    args = dict(args or {})
    refused_by_rule = False
    for rule in rules_for(seccomp, name, capabilities, arch):
        conditions = rule.get("args") or []
        if action_allows(rule.get("action")):
            if all(condition_may_hold(c, args) for c in conditions):
                return True
        elif all(condition_surely_holds(c, args) for c in conditions):
            refused_by_rule = True
    return not refused_by_rule and action_allows(seccomp.get("defaultAction"))


def refusing_action(seccomp: dict, name: str, capabilities: Iterable[str] = ()) -> str:
    """The action that refuses `name` outright: a rule's without conditions, else the default."""
    for rule in rules_for(seccomp, name, capabilities):
        if not action_allows(rule.get("action")) and not rule.get("args"):
            return rule["action"]
    return seccomp.get("defaultAction", "")


# ---------------------------------------------------------------- routes and techniques


@dataclass(frozen=True)
class Route:
    """One way a technique stays reachable: a syscall (with the risky argument values it still
    takes, if the mapping asks about arguments) or a capability (with the syscalls it needs)."""

    kind: str  # "syscall" or "capability"
    name: str  # the syscall or the capability
    reason: str
    argument_indices: tuple[int, ...] = ()
    arguments: tuple[tuple[str, ...], ...] = ()  # allowed combinations, one label per index
    syscalls: tuple[str, ...] = ()  # capability routes: the with_syscalls the profile allows
    needs: str | None = None

    def describe(self) -> str:
        if self.kind == "capability":
            return self.name + (f" (with {', '.join(self.syscalls)})" if self.syscalls else "")
        if not self.arguments:
            return self.name
        per_index = [list(dict.fromkeys(combo[i] for combo in self.arguments)) for i in range(len(self.argument_indices))]
        shown = "; ".join(f"arg {index} {', '.join(labels)}" for index, labels in zip(self.argument_indices, per_index))
        return f"{self.name} with {shown}"

    def to_json(self) -> dict:
        out = {"kind": self.kind, "name": self.name}
        if self.kind == "syscall" and self.argument_indices:
            out["argument_indices"] = list(self.argument_indices)
            out["arguments"] = [", ".join(combo) for combo in self.arguments]
        if self.kind == "capability" and self.syscalls:
            out["syscalls"] = list(self.syscalls)
        if self.needs:
            out["needs"] = self.needs
        out["reason"] = self.reason
        return out


def allowed_argument_combinations(seccomp: dict, syscall: str, when: tuple[ArgumentCondition, ...],
                                  capabilities: Iterable[str] = ()) -> list[tuple[str, ...]]:
    """The combinations of the mapping's argument values that the profile lets through."""
    capabilities = tuple(capabilities)
    allowed = []
    for combo in itertools.product(*(cond.values for cond in when)):
        args = {cond.index: value for cond, (_, value) in zip(when, combo)}
        if syscall_allowed(seccomp, syscall, args, capabilities=capabilities):
            allowed.append(tuple(label for label, _ in combo))
    return allowed


def open_routes(entry: MappingEntry, seccomp: dict, capabilities: Iterable[str]) -> list[Route]:
    capabilities = tuple(normalise_capability(c) for c in capabilities)
    if entry.capability:
        if normalise_capability(entry.capability) not in capabilities:
            return []
        through = tuple(s for s in entry.with_syscalls if syscall_allowed(seccomp, s, capabilities=capabilities))
        if entry.with_syscalls and not through:
            return []
        return [Route("capability", normalise_capability(entry.capability), entry.reason, syscalls=through, needs=entry.needs)]
    routes = []
    for syscall in entry.syscalls:
        if entry.when:
            combos = allowed_argument_combinations(seccomp, syscall, entry.when, capabilities)
            if combos:
                routes.append(Route("syscall", syscall, entry.reason, tuple(c.index for c in entry.when), tuple(combos),
                                    needs=entry.needs))
        elif syscall_allowed(seccomp, syscall, capabilities=capabilities):
            routes.append(Route("syscall", syscall, entry.reason, needs=entry.needs))
    return routes


@dataclass(frozen=True)
class ReachableTechnique:
    technique: Technique
    routes: tuple[Route, ...]

    def to_json(self) -> dict:
        return technique_json(self.technique) | {"through": [route.to_json() for route in self.routes]}


def technique_sort_key(tid: str) -> tuple[int, int]:
    main, _, sub = tid[1:].partition(".")
    return int(main), int(sub or 0)


def reachable_techniques(seccomp: dict, capabilities: Iterable[str]) -> list[ReachableTechnique]:
    """The mapped techniques this profile (OCI LinuxSeccomp dict) and added capabilities
    (CAP_NET_RAW, ...) leave reachable, each with the routes that stay open."""
    capabilities = tuple(capabilities)
    routes: dict[str, list[Route]] = {}
    for entry in load_mapping():
        found = open_routes(entry, seccomp, capabilities)
        if found:
            routes.setdefault(entry.technique, []).extend(found)
    techniques = load_techniques()
    return [ReachableTechnique(techniques[tid], tuple(routes[tid])) for tid in sorted(routes, key=technique_sort_key)]


# ---------------------------------------------------------------- comparing with a baseline


@dataclass(frozen=True)
class Confinement:
    """A seccomp profile and the capabilities a container gets."""

    seccomp: dict
    capabilities: tuple[str, ...] = ()

    @classmethod
    def from_profile_dir(cls, path: str | Path) -> Confinement:
        from tracer.profile.directory import load_profile_dir  # noqa: PLC0415

        profile = load_profile_dir(path)
        return cls(profile.seccomp, tuple(profile.capabilities_add))


UNCONFINED = Confinement({"defaultAction": "SCMP_ACT_ALLOW"})

# What containerd gives a container unless told otherwise: the state before hardening.
RUNTIME_DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def before_hardening(against: str) -> Confinement:
    """The confinement a profile replaces, with containerd's default capabilities: the runtime
    default (Docker's default profile, which RuntimeDefault follows), no seccomp at all
    (unconfined), or a profile FILE (OCI or Docker format)."""
    if against == "runtime-default":
        from tracer.profile.filter import load_docker_default  # noqa: PLC0415

        return Confinement(load_docker_default(), RUNTIME_DEFAULT_CAPABILITIES)
    if against == "unconfined":
        return Confinement(UNCONFINED.seccomp, RUNTIME_DEFAULT_CAPABILITIES)
    from tracer.files import read_json  # noqa: PLC0415

    return Confinement(read_json(against, "a seccomp profile"), RUNTIME_DEFAULT_CAPABILITIES)


@dataclass(frozen=True)
class ClosedTechnique:
    technique: Technique
    baseline_routes: tuple[Route, ...]
    closed_by: tuple[str, ...]  # one line per baseline route: what shut it

    def to_json(self) -> dict:
        return technique_json(self.technique) | {
            "baseline_through": [route.to_json() for route in self.baseline_routes],
            "closed_by": list(self.closed_by),
        }


def what_closed(route: Route, ours: Confinement) -> str:
    caps = {normalise_capability(c) for c in ours.capabilities}
    if route.kind == "capability":
        if route.name not in caps:
            return f"{route.name} not added"
        return f"{route.name} added, but {', '.join(route.syscalls)} refused"
    if syscall_allowed(ours.seccomp, route.name, capabilities=ours.capabilities):
        return f"{route.describe()}: refused by argument conditions ({route.name} allowed only with other values)"
    return f"{route.name} refused ({refusing_action(ours.seccomp, route.name, ours.capabilities)})"


def closed_techniques(ours: Confinement, baseline: Confinement = UNCONFINED) -> list[ClosedTechnique]:
    """Techniques the baseline leaves reachable and ours does not, with what closed each route."""
    still_open = {r.technique.id for r in reachable_techniques(ours.seccomp, ours.capabilities)}
    return [
        ClosedTechnique(r.technique, r.routes, tuple(what_closed(route, ours) for route in r.routes))
        for r in reachable_techniques(baseline.seccomp, baseline.capabilities)
        if r.technique.id not in still_open
    ]


# ---------------------------------------------------------------- rendering


def technique_json(technique: Technique) -> dict:
    return {
        "id": technique.id,
        "name": technique.name,
        "tactics": list(technique.tactics),
        "platform_containers": technique.platform_containers,
        "url": technique.url,
    }


def report_json(reachable: list[ReachableTechnique], closed: list[ClosedTechnique] | None = None) -> dict:
    source = load_attack_data()["source"]
    out = {
        "attack_version": source["attack_version"],
        "attack_source": f"{source['repository']} @ {source['commit']}",
        "reachable": [r.to_json() for r in reachable],
    }
    if closed is not None:
        out["closed"] = [c.to_json() for c in closed]
    return out


def technique_heading(technique: Technique) -> str:
    mark = "" if technique.platform_containers else " (not tagged Containers in ATT&CK)"
    return f"{technique.id} {technique.name} [{', '.join(technique.tactics)}]{mark}"


def report_text(reachable: list[ReachableTechnique], closed: list[ClosedTechnique] | None = None) -> str:
    lines = [f"ATT&CK v{attack_version()}: {len(reachable)} mapped technique(s) reachable"]
    for r in reachable:
        lines.append(f"  {technique_heading(r.technique)}")
        for route in r.routes:
            needs = f" (needs {route.needs})" if route.needs else ""
            lines.append(f"    through {route.describe()}{needs}: {route.reason}")
    if closed is not None:
        lines.append(f"{len(closed)} technique(s) closed compared with the baseline")
        for c in closed:
            lines.append(f"  {technique_heading(c.technique)}")
            lines.extend(f"    {line}" for line in c.closed_by)
    return "\n".join(lines)
