"""Is a profile ever weaker than a baseline (the runtime default)? Rule by rule, with evidence.

Replacing Kubernetes' RuntimeDefault with a generated profile must not widen what a
container may do. For every syscall name the profile allows, this module searches for calls
the profile allows and the baseline refuses: a name the baseline refuses, or arguments
outside the baseline's conditions (clone with namespace flags, a socket family, a
personality). Each such place is listed with the recorded evidence that forced it (the
profile directory's recording.json); a place without evidence is a finding. "Allows" is what
a caller can get through (`Filter.may_pass`, the question tracer risk asks): a call that
SCMP_ACT_TRACE or SCMP_ACT_NOTIFY decide counts as allowed, since its caller may arrange the
tracer or supervisor that lets it run.

Calls are compared as the kernel reads them. A 32-bit argument (a socket family, a persona)
may reach seccomp zero- or sign-extended; a value counts as allowed by a filter when some
such encoding of it is. (So personality(0xffffffff) is allowed by a rule on its low 32 bits
and by Docker's EQ 0xffffffff alike; and AF_ALG stays refused by Docker's LT 38 / EQ 39 /
GT 40 rules although a register with high garbage bits would pass its GT 40.)

The search enumerates, per argument the two filters compare, the values at their boundaries
(each constant, its neighbours, each mask bit flipped) and checks every combination: for the
operators libseccomp has, a difference between the filters shows at one of these values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tracer.arch import native_oci_arch
from tracer.argnames import (
    CLONE_NAMESPACE_FLAGS,
    SETNS_TYPES,
    clone_namespaces,
    ioctl_name,
    personality_name,
    prctl_name,
    socket_name,
)
from tracer.errors import InputError
from tracer.profile.baselines import load_baseline
from tracer.profile.filter import (
    Condition,
    Filter,
    Rule,
    filter_from_oci,
    filter_from_profile,
    parse_kernel_version,
)
from tracer.syscalls import syscall_table
from tracer.trace.arguments import ArgumentRow, Arguments

# Arguments the kernel reads as 32 bits (int or unsigned int); the rest are 64-bit.
ARGUMENT_BITS = {
    "socket": {0: 32, 1: 32, 2: 32},
    "socketpair": {0: 32, 1: 32, 2: 32},
    "personality": {0: 32},
    "prctl": {0: 32},
    "ioctl": {0: 32, 1: 32},
    "setns": {0: 32, 1: 32},
}
MAX_COMBINATIONS = 200_000


def bits(name: str, index: int) -> int:
    return ARGUMENT_BITS.get(name, {}).get(index, 64)


def encodings(name: str, index: int, value: int) -> tuple[int, ...]:
    """The registers a kernel value may arrive in: itself, and sign-extended if 32-bit."""
    if bits(name, index) == 32 and value & 0x80000000:
        return value, value | 0xFFFFFFFF00000000
    return (value,)


def deciding_rule(f: Filter, name: str, call: dict[int, int]) -> Rule | None:
    """The rule of `f` that lets this recorded call run (as the kernel reads it), or None if refused."""
    return _first_rule(f, name, call, lambda rule: rule.allows)


def passing_rule(f: Filter, name: str, call: dict[int, int]) -> Rule | None:
    """The rule of `f` through which a caller may get this call (a tracer or supervisor of its own
    included), or None if refused."""
    return _first_rule(f, name, call, lambda rule: rule.passes)


def _first_rule(f: Filter, name: str, call: dict[int, int], wanted) -> Rule | None:
    indices = sorted(call)
    for registers in itertools.product(*(encodings(name, i, call[i]) for i in indices)):
        rule = f.verdict(name, dict(zip(indices, registers)))
        if wanted(rule):
            return rule
    return None


def boundary_values(name: str, index: int, conditions: list[Condition]) -> set[int]:
    """Values of one argument at which filters with these conditions can differ."""
    width = (1 << bits(name, index)) - 1
    values = {0, width}
    masked = [c for c in conditions if c.op == "SCMP_CMP_MASKED_EQ"]
    for c in conditions:
        if c.op == "SCMP_CMP_MASKED_EQ":
            values.add(c.value_two)
            values.update(c.value_two ^ (1 << b) for b in range(64) if c.value >> b & 1)
        else:
            values.update((c.value - 1, c.value, c.value + 1))
    # A value that satisfies one mask and sits next to every other condition's boundary.
    for m in masked:
        for other in conditions:
            if other is m:
                continue
            targets = (
                [other.value_two]
                if other.op == "SCMP_CMP_MASKED_EQ"
                else [other.value - 1, other.value, other.value + 1]
            )
            for target in targets:
                near = (target & ~m.value) | m.value_two
                values.add(near)
                if other.op == "SCMP_CMP_MASKED_EQ":
                    values.update(near ^ (1 << b) for b in range(64) if other.value >> b & 1 and not m.value >> b & 1)
    return {v & width for v in values if v >= 0}


def describe_call(name: str, call: dict[int, int]) -> str:
    """A call as people read it: "clone with CLONE_NEWUSER", "socket AF_VSOCK"."""
    if name == "clone":
        return f"clone with {clone_namespaces(call.get(0, 0))}"
    if name in ("socket", "socketpair"):
        return f"{name} {socket_name(call.get(0, 0), call.get(2) if 2 in call else None)}"
    if name == "personality":
        return f"personality {personality_name(call.get(0, 0))}"
    if name == "prctl":
        return f"prctl {prctl_name(call.get(0, 0))}"
    if name == "ioctl" and 1 in call:
        return f"ioctl {ioctl_name(call[1])}"
    if name == "setns" and 1 in call:
        return f"setns {SETNS_TYPES.get(call[1], hex(call[1]))}"
    if name == "unshare" and 0 in call:
        return f"unshare {clone_namespaces(call[0]) if call[0] else 'flags 0'}"
    if not call:
        return name
    return f"{name}(" + ", ".join(f"arg{i}={v:#x}" for i, v in sorted(call.items())) + ")"


def describe_rule(name: str, rule: Rule, default: bool = False) -> str:
    if default:
        return f"{name}: the default action {rule.action}"
    if not rule.conditions:
        return f"{name} with any arguments"
    if all(_selects_one_value(name, c) for c in rule.conditions):
        return describe_call(
            name, {c.index: c.value_two if c.op == "SCMP_CMP_MASKED_EQ" else c.value for c in rule.conditions}
        )
    return f"{name} where " + " and ".join(_describe_condition(c) for c in rule.conditions)


def _selects_one_value(name: str, c: Condition) -> bool:
    """EQ, a MASKED_EQ on all the bits the kernel reads, or clone's namespace bits."""
    width = (1 << bits(name, c.index)) - 1
    if c.op == "SCMP_CMP_EQ":
        return True
    return c.op == "SCMP_CMP_MASKED_EQ" and (
        c.value & width == width or (name == "clone" and c.value == CLONE_NAMESPACE_FLAGS)
    )


def _describe_condition(c: Condition) -> str:
    if c.op == "SCMP_CMP_MASKED_EQ":
        return f"arg{c.index} & {c.value:#x} == {c.value_two:#x}"
    symbol = {
        "SCMP_CMP_NE": "!=",
        "SCMP_CMP_LT": "<",
        "SCMP_CMP_LE": "<=",
        "SCMP_CMP_EQ": "==",
        "SCMP_CMP_GE": ">=",
        "SCMP_CMP_GT": ">",
    }[c.op]
    return f"arg{c.index} {symbol} {c.value:#x}"


# ---------------------------------------------------------------- evidence


@dataclass
class Evidence:
    """What the recording says a profile needed: calls per name, argument rows, and names
    added for another reason (runc's hand-over set, a complain-mode log, by hand)."""

    calls: dict[str, int] = field(default_factory=dict)
    arguments: Arguments | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_recording(cls, recording: dict | None, source: str = "recording.json") -> "Evidence":
        """The `evidence` generate wrote into recording.json (none in older directories)."""
        from tracer.trace.arguments import parse_arguments  # noqa: PLC0415
        from tracer.trace.format import PHASES  # noqa: PLC0415

        evidence = (recording or {}).get("evidence") or {}
        if not isinstance(evidence, dict):
            raise InputError(source, "'evidence' must be an object")
        calls, sources, arguments = (
            evidence.get("syscalls") or {},
            evidence.get("sources") or {},
            evidence.get("arguments"),
        )
        if not isinstance(calls, dict) or not all(isinstance(v, int) for v in calls.values()):
            raise InputError(source, "evidence.syscalls must map syscall names to call counts")
        if not isinstance(sources, dict):
            raise InputError(source, "evidence.sources must map syscall names to reasons")
        return cls(
            dict(calls), parse_arguments(source, arguments, PHASES) if arguments is not None else None, dict(sources)
        )

    def rows(self, name: str) -> list[ArgumentRow] | None:
        """Recorded argument rows of `name`, or None when its arguments were not recorded."""
        if self.arguments is None or not self.arguments.knows(name):
            return None
        return [row for row in self.arguments.rows if row.syscall == name]


def kernel_values(name: str, row: ArgumentRow) -> dict[int, int]:
    return {i: v & ((1 << bits(name, i)) - 1) for i, v in row.arguments().items()}


def describe_row(row: ArgumentRow) -> str:
    """ "recorded socket AF_NETLINK NETLINK_ROUTE (family 16, type 3, protocol 0) 2x in startup, succeeded"."""
    values = ", ".join(
        f"{k} {v:#x}" if isinstance(v, int) and k in ("flags", "request", "persona") else f"{k} {v}"
        for k, v in zip(_fields(row), row.values)
        if v is not None
    )
    call = describe_call(row.syscall, kernel_values(row.syscall, row)) if row.arguments() else row.syscall
    result = "succeeded" if row.errno == 0 else f"failed with errno {row.errno}"
    return f"recorded {call} ({values}) {row.count}x in {row.phase}, {result}"


def _fields(row: ArgumentRow):
    from tracer.trace.arguments import ARGUMENT_FIELDS  # noqa: PLC0415

    return ARGUMENT_FIELDS[row.syscall]


# ---------------------------------------------------------------- the comparison


@dataclass
class Widening:
    """One place where the profile allows calls the baseline refuses."""

    syscall: str
    rule: str  # the profile's rule that allows them
    examples: list[str]  # such calls, as people read them
    evidence: list[str]  # what in the recording forced the rule; empty: a finding

    @property
    def finding(self) -> bool:
        return not self.evidence

    def to_json(self) -> dict:
        return {
            "syscall": self.syscall,
            "rule": self.rule,
            "examples": self.examples,
            "evidence": self.evidence,
            "finding": self.finding,
        }


@dataclass
class Comparison:
    profile: str
    baseline: str
    wider: list[Widening]
    refused: list[str]  # names the baseline allows (for some arguments) that the profile refuses
    conditioned: list[str]  # names the profile allows only with some arguments
    allowed: int
    baseline_allowed: int
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Widening]:
        return [w for w in self.wider if w.finding]

    def verdict(self) -> str:
        if not self.wider:
            return f"never wider than {self.baseline}"
        if not self.findings:
            return (
                f"wider than {self.baseline} in {len(self.wider)} place{'s' * (len(self.wider) != 1)}, "
                "each forced by recorded evidence"
            )
        return (
            f"FINDING: wider than {self.baseline} in {len(self.findings)} place{'s' * (len(self.findings) != 1)} "
            "without recorded evidence"
        )

    def to_json(self) -> dict:
        return {
            "profile": self.profile,
            "baseline": self.baseline,
            "verdict": self.verdict(),
            "findings": len(self.findings),
            "wider": [w.to_json() for w in self.wider],
            "narrower": {"refused": self.refused, "conditioned": self.conditioned},
            "allowed": self.allowed,
            "baseline_allowed": self.baseline_allowed,
            "notes": self.notes,
        }

    def to_text(self) -> str:
        lines = [
            f"{self.profile} against {self.baseline}",
            f"  allows      {self.allowed} syscalls, {len(self.conditioned)} of them only with some arguments "
            f"({', '.join(self.conditioned) or 'none'}); the baseline {self.baseline_allowed}",
            f"  refuses     {len(self.refused)} syscalls the baseline allows",
        ]
        if not self.wider:
            lines.append("  wider       nothing")
        for widening in self.wider:
            lines.append(f"  wider       {widening.rule}: the baseline refuses e.g. {'; '.join(widening.examples)}")
            lines.extend(f"                evidence: {line}" for line in widening.evidence)
            if widening.finding:
                lines.append("                no recorded evidence: FINDING")
        lines.extend(f"  note        {note}" for note in self.notes)
        lines.append(self.verdict())
        return "\n".join(lines)


def compare(
    profile: Filter,
    baseline: Filter,
    arch: str,
    evidence: Evidence | None = None,
    *,
    profile_name: str = "the profile",
    baseline_name: str = "the baseline",
) -> Comparison:
    evidence = evidence or Evidence()
    on_arch = set(syscall_table(arch).values())  # Docker's profile also names other architectures' calls
    names = (profile.names() | baseline.names()) & on_arch
    if profile.default.passes or baseline.default.passes:
        names = on_arch
    wider, refused, conditioned, allowed, baseline_allowed = [], [], [], 0, 0
    for name in sorted(names):
        ours, theirs = profile.may_pass(name), baseline.may_pass(name)
        allowed += ours
        baseline_allowed += theirs
        if not ours:
            if theirs:
                refused.append(name)
            continue
        if profile.indices(name):
            conditioned.append(name)
        wider.extend(widenings(profile, baseline, name, evidence))
    comparison = Comparison(profile_name, baseline_name, wider, refused, conditioned, allowed, baseline_allowed)
    extra = sorted(set(profile.architectures) - set(baseline.architectures)) if baseline.architectures else []
    if extra:
        comparison.wider.append(Widening("*", f"architectures {' '.join(extra)}", ["any syscall of these ABIs"], []))
    return comparison


def widenings(profile: Filter, baseline: Filter, name: str, evidence: Evidence) -> list[Widening]:
    """Calls of `name` the profile allows and the baseline refuses, grouped by the profile's
    rule that allows them, each group with its evidence."""
    indices = sorted(profile.indices(name) | baseline.indices(name))
    conditions = [c for f in (profile, baseline) for rule in f.rules_for(name) for c in rule.conditions]
    axes = [sorted(boundary_values(name, i, [c for c in conditions if c.index == i])) for i in indices]
    groups: dict[int, tuple[Rule, list[dict[int, int]]]] = {}
    for count, values in enumerate(itertools.product(*axes)):
        if count >= MAX_COMBINATIONS:
            break
        call = dict(zip(indices, values))
        rule = passing_rule(profile, name, call)
        if rule is not None and passing_rule(baseline, name, call) is None:
            groups.setdefault(id(rule), (rule, []))[1].append(call)
    return [
        Widening(
            name,
            describe_rule(name, rule, rule is profile.default),
            _examples(name, calls),
            forced_by(profile, baseline, name, rule, evidence),
        )
        for rule, calls in groups.values()
    ]


def _examples(name: str, calls: list[dict[int, int]], limit: int = 3) -> list[str]:
    described = list(dict.fromkeys(describe_call(name, call) for call in calls))
    return described[:limit] + ([f"{len(described) - limit} more"] if len(described) > limit else [])


def forced_by(profile: Filter, baseline: Filter, name: str, rule: Rule, evidence: Evidence) -> list[str]:
    """The recorded calls that needed this rule and that the baseline would refuse."""
    rows = evidence.rows(name)
    if rows is not None and rows:
        return [
            describe_row(row)
            for row in rows
            if passing_rule(profile, name, kernel_values(name, row)) is rule
            and passing_rule(baseline, name, kernel_values(name, row)) is None
        ]
    if baseline.may_pass(name):
        return []  # the baseline allows some calls: only recorded arguments could show these were needed
    lines = []
    if evidence.calls.get(name):
        lines.append(f"recorded {evidence.calls[name]} calls of {name} (arguments not recorded)")
    if name in evidence.sources:
        lines.append(f"{name}: {evidence.sources[name]}")
    return lines


# ---------------------------------------------------------------- a profile directory


def baseline_filter(against: str, capabilities: list[str], arch: str, kernel) -> tuple[Filter, str]:
    """A named baseline (tracer.profile.baselines) or a profile file, for these capabilities on `arch`."""
    baseline = load_baseline(against)
    return (
        filter_from_profile(baseline.document, capabilities, arch, kernel, baseline.source),
        baseline.named_for(capabilities, arch),
    )


def compare_profile_dir(path, against: str = "runtime-default") -> Comparison:
    """`tracer risk DIR --against ...`: the directory's seccomp profile, for its own
    capability set and architecture, against the baseline, with its recorded evidence."""
    from tracer.profile.directory import load_profile_dir  # noqa: PLC0415

    profile = load_profile_dir(path)
    arch = (profile.seccomp.get("architectures") or [native_oci_arch()])[0]
    traces = (profile.recording or {}).get("traces") or [{}]
    kernel = parse_kernel_version(traces[0].get("kernel"))
    baseline, baseline_name = baseline_filter(against, profile.capabilities_add, arch, kernel)
    return compare(
        filter_from_oci(profile.seccomp, str(profile.path / "seccomp.json")),
        baseline,
        arch,
        Evidence.from_recording(profile.recording, str(profile.path / "recording.json")),
        profile_name=str(path),
        baseline_name=baseline_name,
    )
