"""Residual risk as MITRE ATT&CK techniques: which techniques a seccomp profile and capability set
leave reachable, through what, and which a profile closes compared with a baseline.

Data (package data, see tracer/risk/data/README.md):
  attack-containers.json  ATT&CK techniques of the Containers platform, made from MITRE's STIX
                          data by scripts/make-attack-data
  attack-mapping.json     the project's mapping: syscalls (optionally with argument values) and
                          capabilities -> the techniques they enable, each with its reason

A route counts as open when a caller can get it through the profile (`Filter.may_pass`: with
a tracer or supervisor of its own, so SCMP_ACT_TRACE and SCMP_ACT_NOTIFY leave it open): risk
fails closed, so an action it does not know counts as allowing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

from tracer.argnames import ADDRESS_FAMILIES, NAMESPACE_FLAGS, SOCKET_TYPE_FLAGS, SOCKET_TYPES
from tracer.capabilities import normalise_capability
from tracer.profile.baselines import load_baseline
from tracer.profile.filter import ALLOW, Filter, filter_from_profile

# Values the mapping's "when" conditions name (x86_64 and aarch64 numbering). A flag set is
# written with |, e.g. "SOCK_RAW|SOCK_CLOEXEC".
ARGUMENT_VALUES = {
    name: value
    for table in (NAMESPACE_FLAGS, ADDRESS_FAMILIES, SOCKET_TYPES, SOCKET_TYPE_FLAGS)
    for value, name in table.items()
}


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
        record["id"]: Technique(
            record["id"],
            record["name"],
            tuple(record["tactics"]),
            record["parent"],
            record["platform_containers"],
            record["url"],
        )
        for record in load_attack_data()["techniques"]
    }


def attack_version() -> str:
    return load_attack_data()["source"]["attack_version"]


def argument_value(label: str) -> int:
    """ "SOCK_RAW|SOCK_CLOEXEC" -> 0x80003."""
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
    return MappingEntry(
        raw["technique"],
        raw["reason"],
        tuple(raw.get("syscalls", ())),
        when,
        raw.get("capability"),
        tuple(raw.get("with_syscalls", ())),
        raw.get("needs"),
    )


@cache
def load_mapping() -> tuple[MappingEntry, ...]:
    entries = tuple(mapping_entry(raw) for raw in json.loads(data_file("attack-mapping.json").read_text())["entries"])
    unknown = sorted({entry.technique for entry in entries} - load_techniques().keys())
    if unknown:
        raise ValueError(f"attack mapping names techniques missing from attack-containers.json: {', '.join(unknown)}")
    return entries


def mapped_technique_ids() -> set[str]:
    return {entry.technique for entry in load_mapping()}


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
        per_index = [
            list(dict.fromkeys(combo[i] for combo in self.arguments)) for i in range(len(self.argument_indices))
        ]
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


def allowed_argument_combinations(
    f: Filter, syscall: str, when: tuple[ArgumentCondition, ...]
) -> list[tuple[str, ...]]:
    """The combinations of the mapping's argument values that the profile lets through."""
    allowed = []
    for combo in itertools.product(*(cond.values for cond in when)):
        args = {cond.index: value for cond, (_, value) in zip(when, combo)}
        if f.may_pass(syscall, args):
            allowed.append(tuple(label for label, _ in combo))
    return allowed


def open_routes(entry: MappingEntry, f: Filter, capabilities: Iterable[str]) -> list[Route]:
    capabilities = tuple(normalise_capability(c) for c in capabilities)
    if entry.capability:
        if normalise_capability(entry.capability) not in capabilities:
            return []
        through = tuple(s for s in entry.with_syscalls if f.may_pass(s))
        if entry.with_syscalls and not through:
            return []
        return [
            Route(
                "capability", normalise_capability(entry.capability), entry.reason, syscalls=through, needs=entry.needs
            )
        ]
    routes = []
    for syscall in entry.syscalls:
        if entry.when:
            combos = allowed_argument_combinations(f, syscall, entry.when)
            if combos:
                routes.append(
                    Route(
                        "syscall",
                        syscall,
                        entry.reason,
                        tuple(c.index for c in entry.when),
                        tuple(combos),
                        needs=entry.needs,
                    )
                )
        elif f.may_pass(syscall):
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
    """The mapped techniques this profile (OCI or Docker format) and added capabilities
    (CAP_NET_RAW, ...) leave reachable, each with the routes that stay open."""
    capabilities = tuple(capabilities)
    return techniques_through(filter_from_profile(seccomp, capabilities), capabilities)


def techniques_through(f: Filter, capabilities: tuple[str, ...]) -> list[ReachableTechnique]:
    routes: dict[str, list[Route]] = {}
    for entry in load_mapping():
        found = open_routes(entry, f, capabilities)
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

    @cached_property
    def filter(self) -> Filter:
        return filter_from_profile(self.seccomp, self.capabilities)

    @classmethod
    def from_profile_dir(cls, path: str | Path) -> Confinement:
        from tracer.profile.directory import load_profile_dir  # noqa: PLC0415

        profile = load_profile_dir(path)
        return cls(profile.seccomp, tuple(profile.capabilities_add))


UNCONFINED = Confinement({"defaultAction": ALLOW})

# What containerd gives a container unless told otherwise: the state before hardening.
RUNTIME_DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def before_hardening(against: str) -> Confinement:
    """The confinement a profile replaces, with containerd's default capabilities: a named
    baseline (runtime-default, containerd-VERSION, unconfined) or a profile FILE."""
    return Confinement(load_baseline(against).document, RUNTIME_DEFAULT_CAPABILITIES)


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
    if ours.filter.may_pass(route.name):
        return f"{route.describe()}: refused by argument conditions ({route.name} allowed only with other values)"
    return f"{route.name} refused ({ours.filter.refusal(route.name).action})"


def closed_techniques(ours: Confinement, baseline: Confinement = UNCONFINED) -> list[ClosedTechnique]:
    """Techniques the baseline leaves reachable and ours does not, with what closed each route."""
    still_open = {r.technique.id for r in techniques_through(ours.filter, ours.capabilities)}
    return [
        ClosedTechnique(r.technique, r.routes, tuple(what_closed(route, ours) for route in r.routes))
        for r in techniques_through(baseline.filter, baseline.capabilities)
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
