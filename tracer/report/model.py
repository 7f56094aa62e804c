"""The facts of a security review, gathered once from a profile directory, optionally the trace
it was recorded in and the workload's manifest; the HTML and Markdown renderers only lay them
out, so both say the same thing.

Sections (each a dataclass below): provenance, syscall activity per phase, capability evidence,
argument conditions, network surface (tracer.network.surface), Pod Security before and after hardening, ATT&CK
techniques, and the comparison with the container runtime's default profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tracer import __version__
from tracer.errors import InputError
from tracer.files import read_json
from tracer.kube.harden import (
    HardenResult,
    ObjectReport,
    default_localhost_profile,
    harden_text,
)
from tracer.network.surface import NetworkSurface
from tracer.profile.against import compare_profile_dir
from tracer.profile.directory import ProfileDir, load_profile_dir
from tracer.profile.filter import Filter, Rule, filter_from_docker, filter_from_oci, load_docker_default, profile_arch
from tracer.report import RARE_BELOW
from tracer.report.arguments import ArgumentRule, argument_rules
from tracer.risk import attack
from tracer.trace.format import PROFILE_PHASES, Trace, load_trace
from tracer.trace.summary import trace_summary

# What a container gets from containerd (and Docker) when the manifest adds and drops nothing:
# containerd's oci.defaultUnixCaps, the set the mini-NIM was recorded with.
RUNTIME_DEFAULT_CAPABILITIES = attack.RUNTIME_DEFAULT_CAPABILITIES


# ---------------------------------------------------------------- provenance


@dataclass(frozen=True)
class Recording:
    """Where and when one recording ran, as its trace (or the profile's recording.json) says."""

    source: str | None
    started_at: str | None
    ended_at: str | None
    hostname: str | None
    kernel: str | None
    arch: str | None
    target_kind: str | None
    target_name: str | None
    runtime: str | None
    user: str | None
    rootfs_readonly: bool | None
    capability_source: str | None
    stopped_by: str | None
    complete: bool | None
    load_switch: str | None
    load_command: str | None
    tool_version: str | None
    lost: dict[str, int]

    @property
    def lost_nonzero(self) -> dict[str, int]:
        return {reason: count for reason, count in self.lost.items() if count}


@dataclass(frozen=True)
class Provenance:
    profile_path: str
    profile_tool_version: str | None
    recordings: tuple[Recording, ...]  # the trace given, else the profile's own recordings
    from_trace: bool
    trace_is_profiles_recording: bool | None  # None: no trace given, or the profile does not say
    profiles_recordings: tuple[Recording, ...] = ()  # what recording.json names, trace given or not

    @property
    def lost(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for recording in self.recordings:
            for reason, count in recording.lost_nonzero.items():
                total[reason] = total.get(reason, 0) + count
        return total

    @property
    def lost_known(self) -> bool:
        """False when no recording says anything about its lost counters."""
        return any(recording.lost for recording in self.recordings)


def runtime_text(target: dict) -> str | None:
    runtime = target.get("runtime")
    if isinstance(runtime, dict) and runtime.get("name"):
        return f"{runtime['name']} {runtime.get('version', '')}".strip()
    return None


def user_text(target: dict) -> str | None:
    user = target.get("user")
    if isinstance(user, dict) and user.get("uid") is not None:
        return f"uid {user['uid']}, gid {user.get('gid', '?')}"
    return None


def lost_counters(value) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(reason): int(count) for reason, count in value.items() if isinstance(count, int)}


def load_switch_text(metadata: dict) -> str | None:
    changes = [c for c in metadata.get("phase_changes") or [] if isinstance(c, dict) and c.get("phase") == "load"]
    if not changes:
        return None
    first = changes[0]
    return f"at {first.get('t', '?')} s: {first.get('reason', 'no reason given')}"


def recording_from_trace(trace: Trace) -> Recording:
    meta = trace.metadata
    target = meta.get("target") if isinstance(meta.get("target"), dict) else {}
    load = meta.get("load") if isinstance(meta.get("load"), dict) else {}
    return Recording(
        source=trace.source,
        started_at=meta.get("started_at"),
        ended_at=meta.get("ended_at"),
        hostname=meta.get("hostname"),
        kernel=meta.get("kernel"),
        arch=meta.get("arch"),
        target_kind=target.get("kind", "merged" if meta.get("merged_from") else None),
        target_name=target.get("name"),
        runtime=runtime_text(target),
        user=user_text(target),
        rootfs_readonly=target.get("rootfs_readonly"),
        capability_source=meta.get("capability_source"),
        stopped_by=meta.get("stopped_by"),
        complete=meta.get("complete"),
        load_switch=load_switch_text(meta),
        load_command=load.get("command"),
        tool_version=meta.get("tool_version"),
        lost=lost_counters(trace.lost),
    )


def recording_from_profile(entry: dict) -> Recording:
    """One of recording.json's `traces` (what `tracer generate` kept of each input)."""
    target = entry.get("target") if isinstance(entry.get("target"), dict) else {}
    return Recording(
        source=entry.get("source"),
        started_at=entry.get("started_at"),
        ended_at=None,
        hostname=None,
        kernel=entry.get("kernel"),
        arch=None,
        target_kind=target.get("kind"),
        target_name=target.get("name"),
        runtime=runtime_text(target),
        user=user_text(target),
        rootfs_readonly=target.get("rootfs_readonly"),
        capability_source=None,
        stopped_by=None,
        complete=None,
        load_switch=None,
        load_command=None,
        tool_version=None,
        lost=lost_counters(entry.get("lost")),
    )


def profile_recordings(profile: ProfileDir) -> list[Recording]:
    entries = (profile.recording or {}).get("traces") or []
    return [recording_from_profile(entry) for entry in entries if isinstance(entry, dict)]


def gather_provenance(profile: ProfileDir, trace: Trace | None, shown_path: str | None = None) -> Provenance:
    own = profile_recordings(profile)
    tool_version = (profile.recording or {}).get("tool_version")
    if trace is None:
        return Provenance(shown_path or str(profile.path), tool_version, tuple(own), False, None, tuple(own))
    given = recording_from_trace(trace)
    starts = {recording.started_at for recording in own if recording.started_at}
    same = (given.started_at in starts) if starts else None
    return Provenance(shown_path or str(profile.path), tool_version, (given,), True, same, tuple(own))


# ---------------------------------------------------------------- syscall activity


@dataclass(frozen=True)
class SyscallBar:
    name: str
    calls: dict[str, int]  # phase -> calls, for the phases the profile covers
    allowed: bool  # the profile lets it through (by name), or answers ENOSYS so the library falls back
    rare: bool
    runs: int | None = None  # merged traces: runs it appeared in

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def only_phase(self, phases: tuple[str, ...]) -> str | None:
        """The one phase of `phases` it was seen in, if only one."""
        seen = [phase for phase in phases if self.calls.get(phase)]
        return seen[0] if len(seen) == 1 else None


@dataclass(frozen=True)
class SyscallActivity:
    bars: tuple[SyscallBar, ...]  # most called first
    phases: tuple[str, ...]  # the profiled phases with any calls, in recording order
    rare_rule: str
    run_count: int

    @property
    def total_calls(self) -> int:
        return sum(bar.total for bar in self.bars)

    def calls_in(self, phase: str) -> int:
        return sum(bar.calls.get(phase, 0) for bar in self.bars)

    @property
    def rare(self) -> list[str]:
        return [bar.name for bar in self.bars if bar.rare]

    @property
    def refused_by_profile(self) -> list[str]:
        """Recorded under the filter but not allowed by the profile: this profile would break it."""
        return sorted(bar.name for bar in self.bars if not bar.allowed)


def rare_rule_text(rare_below: int, run_count: int) -> str:
    rule = f"seen fewer than {rare_below} times in all profiled phases together"
    if run_count > 1:
        rule += f", or in only one of the {run_count} merged runs"
    return rule


def is_rare(total: int, runs: int | None, run_count: int, rare_below: int) -> bool:
    return total < rare_below or (run_count > 1 and runs is not None and runs < 2)


def gather_activity(trace: Trace, seccomp: dict, rare_below: int = RARE_BELOW) -> SyscallActivity:
    summary = trace_summary(trace)
    per_phase = {phase: summary["phases"].get(phase, {}) for phase in PROFILE_PHASES}
    names = sorted({name for rows in per_phase.values() for name in rows})
    profile = filter_from_oci(seccomp)
    allowed = profile.names_allowed() | profile.names_enosys()
    run_count = int((trace.runs or {}).get("count", 1))
    runs_by_name = (trace.runs or {}).get("syscalls") or {}
    bars = []
    for name in names:
        calls = {phase: rows[name]["calls"] for phase, rows in per_phase.items() if name in rows}
        runs = runs_by_name.get(name) if trace.runs else None
        total = sum(calls.values())
        bars.append(SyscallBar(name, calls, name in allowed, is_rare(total, runs, run_count, rare_below), runs))
    bars.sort(key=lambda bar: (-bar.total, bar.name))
    phases = tuple(phase for phase in PROFILE_PHASES if any(bar.calls.get(phase) for bar in bars))
    return SyscallActivity(tuple(bars), phases, rare_rule_text(rare_below, run_count), run_count)


# ---------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class Evidence:
    """One row of capabilities.json: a check of the capability during a syscall."""

    syscall: str
    phase: str
    outcome: str
    count: int
    verdict: str

    def text(self) -> str:
        return f"{self.syscall} in {self.phase} ({self.count}x, {self.outcome.replace('_', ' ')})"


@dataclass(frozen=True)
class CapabilityFacts:
    added: dict[str, tuple[Evidence, ...]]  # empty tuple: added by hand
    failed_without: dict[str, tuple[Evidence, ...]]
    not_required: dict[str, tuple[Evidence, ...]]
    drop: tuple[str, ...]


def evidence_rows(rows) -> tuple[Evidence, ...]:
    found = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and "syscall" in row:
            found.append(
                Evidence(
                    str(row["syscall"]),
                    str(row.get("phase", "?")),
                    str(row.get("outcome", "?")),
                    int(row.get("count", 0)),
                    str(row.get("verdict", "")),
                )
            )
    return tuple(found)


def evidence_by_capability(section) -> dict[str, tuple[Evidence, ...]]:
    if not isinstance(section, dict):
        return {}
    return {str(cap): evidence_rows(rows) for cap, rows in sorted(section.items())}


def gather_capabilities(profile: ProfileDir) -> CapabilityFacts:
    document = profile.capabilities
    evidence = evidence_by_capability(document.get("evidence"))
    added = {cap: evidence.get(cap, ()) for cap in sorted(profile.capabilities_add)}
    return CapabilityFacts(
        added,
        evidence_by_capability(document.get("failed_without")),
        evidence_by_capability(document.get("not_required")),
        tuple(document.get("drop", [])),
    )


# ---------------------------------------------------------------- network


@dataclass(frozen=True)
class NetworkFacts:
    """The trace's optional `network` section (tracer.network.NetworkSurface), if it has one."""

    surface: NetworkSurface | None

    @property
    def recorded(self) -> bool:
        return self.surface is not None


def network_section(trace: Trace | None):
    """The trace's `network` section: an attribute once load_trace keeps one, else the document's."""
    if trace is None:
        return None
    section = getattr(trace, "network", None)
    if section is None and trace.source and Path(trace.source).is_file():
        document = read_json(trace.source, "a trace file")
        section = document.get("network") if isinstance(document, dict) else None
    return section


def gather_network(trace: Trace | None) -> NetworkFacts:
    section = network_section(trace)
    if section is None:
        return NetworkFacts(None)
    if isinstance(section, NetworkSurface):
        return NetworkFacts(section)
    return NetworkFacts(NetworkSurface.from_json(section, trace.source))


# ---------------------------------------------------------------- Pod Security


@dataclass(frozen=True)
class PodSecurityFacts:
    manifest: str
    localhost_profile: str
    objects: tuple[ObjectReport, ...]
    warnings: tuple[str, ...]


def read_manifest(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(path, "manifest not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read: {err}") from None


def gather_pod_security(
    manifest: Path, profile: ProfileDir, container: str | None = None, pss_version: str = "latest"
) -> PodSecurityFacts:
    """Harden the manifest in memory, as `tracer k8s harden` does, and keep the levels."""
    result: HardenResult = harden_text(
        read_manifest(manifest), profile, source=str(manifest), container=container, pss_version=pss_version
    )
    return PodSecurityFacts(
        str(manifest), default_localhost_profile(profile), tuple(result.reports), tuple(result.warnings)
    )


# ---------------------------------------------------------------- ATT&CK


@dataclass(frozen=True)
class TechniqueRow:
    """One technique reachable somewhere: without seccomp, under the runtime default, or here."""

    technique: attack.Technique
    unconfined: tuple[attack.Route, ...]
    runtime_default: tuple[attack.Route, ...]
    profile: tuple[attack.Route, ...]  # empty: closed by this profile
    closed_by: tuple[str, ...]  # when closed: what shut each route open without seccomp

    @property
    def reachable(self) -> bool:
        return bool(self.profile)


@dataclass(frozen=True)
class AttackFacts:
    version: str
    rows: tuple[TechniqueRow, ...]  # reachable under this profile first, then closed; by technique id
    capabilities: tuple[str, ...]  # the baselines' capability set

    @property
    def reachable(self) -> list[TechniqueRow]:
        return [row for row in self.rows if row.reachable]

    @property
    def closed(self) -> list[TechniqueRow]:
        return [row for row in self.rows if not row.reachable]

    @property
    def closed_beyond_runtime_default(self) -> list[TechniqueRow]:
        return [row for row in self.closed if row.runtime_default]


def runtime_default_confinement(docker: dict) -> attack.Confinement:
    return attack.Confinement(docker, RUNTIME_DEFAULT_CAPABILITIES)


def no_seccomp_confinement() -> attack.Confinement:
    """What Kubernetes gives a container without a seccompProfile (Unconfined), with the
    runtime's default capabilities."""
    return attack.Confinement(attack.UNCONFINED.seccomp, RUNTIME_DEFAULT_CAPABILITIES)


def routes_by_technique(confinement: attack.Confinement) -> dict[str, attack.ReachableTechnique]:
    return {r.technique.id: r for r in attack.techniques_through(confinement.filter, confinement.capabilities)}


def gather_attack(profile: ProfileDir, docker: dict) -> AttackFacts:
    ours = attack.Confinement(profile.seccomp, tuple(profile.capabilities_add))
    unconfined = no_seccomp_confinement()
    by_confinement = [routes_by_technique(c) for c in (unconfined, runtime_default_confinement(docker), ours)]
    closed = {c.technique.id: c.closed_by for c in attack.closed_techniques(ours, unconfined)}
    ids = sorted(set().union(*by_confinement), key=attack.technique_sort_key)
    techniques = attack.load_techniques()
    rows = tuple(
        TechniqueRow(
            techniques[tid],
            *(tuple(found[tid].routes) if tid in found else () for found in by_confinement),
            closed.get(tid, ()),
        )
        for tid in ids
    )
    rows = tuple(sorted(rows, key=lambda row: not row.reachable))  # what stays open first, stable by id
    return AttackFacts(attack.attack_version(), rows, RUNTIME_DEFAULT_CAPABILITIES)


# ---------------------------------------------------------------- the runtime default


@dataclass(frozen=True)
class RuntimeDefaultComparison:
    """This profile against Docker's default seccomp profile (containerd's RuntimeDefault is
    the same list), by syscall name."""

    allowed: int
    baseline: int
    reduction: float
    refused_here: tuple[str, ...]  # the runtime default allows them unconditionally, this profile refuses
    # (syscall, how this profile allows it, how the runtime default treats it) where the default is stricter
    beyond: tuple[tuple[str, str, str], ...]
    method: str


def refusal_text(rule: Rule) -> str:
    errno = rule.returned_errno
    return f"{rule.action} (errno {errno})" if errno is not None else rule.action


def rule_conditions(name: str, rule: Rule) -> str:
    """A rule's conditions in words ("arg 0 is AF_INET and ..."); empty without conditions."""
    return " and ".join(c.reads for text in argument_rules({"syscalls": [rule.to_oci(name)]}) for c in text.conditions)


def docker_treatment(docker: dict, name: str, arch: str) -> str:
    """How Docker's profile treats a syscall it does not allow unconditionally on `arch`:
    'allowed only with CAP_SYS_ADMIN; otherwise SCMP_ACT_ERRNO (errno 38)'."""
    every_rule = filter_from_docker(docker, None, arch)  # every capability requirement kept, in words
    rules = every_rule.rules_for(name)
    by_requirement: dict[str, list[str]] = {}
    for rule in rules:
        if rule.passes:
            by_requirement.setdefault(rule.requirement, []).append(rule_conditions(name, rule))
    ways = []
    for requirement, conditions in by_requirement.items():
        with_args = [c for c in conditions if c]
        if len(with_args) < len(conditions):  # one rule asks for nothing but the requirement
            if not requirement:
                return "allowed"
            ways.append(requirement)
        else:
            ways.append(" ".join(part for part in (requirement, "if " + ", or ".join(with_args)) if part))
    otherwise = refusal_text(every_rule.refusal(name))
    if not ways:
        return f"refused: {otherwise}"
    return f"allowed only {'; or '.join(ways)}; otherwise {otherwise}"


def our_conditions(profile: Filter, name: str) -> str:
    """How this profile allows `name`: 'any arguments', or 'if <conditions>, or <conditions>'."""
    allowing = [rule for rule in profile.rules_for(name) if rule.passes]
    if not allowing or any(not rule.conditions for rule in allowing):
        return "any arguments"
    return "if " + ", or ".join(rule_conditions(name, rule) for rule in allowing)


def gather_runtime_default(profile: ProfileDir, docker: dict) -> RuntimeDefaultComparison:
    """The comparison `tracer risk --against runtime-default` makes, rule by rule."""
    arch = profile_arch(profile.seccomp)
    ours = filter_from_oci(profile.seccomp)
    comparison = compare_profile_dir(profile.path, "runtime-default")
    wider = sorted({w.syscall for w in comparison.wider})
    beyond = tuple((name, our_conditions(ours, name), docker_treatment(docker, name, arch)) for name in wider)
    baseline = comparison.baseline_allowed
    return RuntimeDefaultComparison(
        allowed=comparison.allowed,
        baseline=baseline,
        reduction=len(comparison.refused) / baseline if baseline else 0.0,
        refused_here=tuple(sorted(comparison.refused)),
        beyond=beyond,
        method="rule by rule, argument conditions included, for the profile's capabilities (tracer risk "
        "--against runtime-default); where the runtime default is stricter, its conditions are quoted",
    )


# ---------------------------------------------------------------- the whole report


@dataclass(frozen=True)
class ProfileFacts:
    name: str
    path: str
    default_action: str
    architectures: tuple[str, ...]
    allowed: tuple[str, ...]
    other_rules: tuple[tuple[str, tuple[str, ...]], ...]  # (action, names) of rules without args that refuse


@dataclass(frozen=True)
class Report:
    profile: ProfileFacts
    provenance: Provenance
    activity: SyscallActivity | None
    capabilities: CapabilityFacts
    argument_rules: tuple[ArgumentRule, ...]
    network: NetworkFacts
    pod_security: PodSecurityFacts | None
    attack: AttackFacts
    runtime_default: RuntimeDefaultComparison
    generated_at: str
    tool_version: str = __version__
    inputs: dict[str, str] = field(default_factory=dict)


def gather_profile_facts(profile: ProfileDir) -> ProfileFacts:
    seccomp = filter_from_oci(profile.seccomp)
    others = tuple((rule.action, names) for rule, names in seccomp.listed if not rule.allows and not rule.conditions)
    return ProfileFacts(
        profile.name,
        str(profile.path),
        seccomp.default.action,
        seccomp.architectures,
        tuple(sorted(seccomp.names_allowed())),
        others,
    )


def build_report(
    profile_dir: str | Path,
    trace_path: str | Path | None = None,
    manifest: str | Path | None = None,
    *,
    container: str | None = None,
    pss_version: str = "latest",
    rare_below: int = RARE_BELOW,
    now: datetime | None = None,
) -> Report:
    """Gather every fact of the review; any bad input is an InputError naming the file."""
    if rare_below < 1:
        raise InputError(None, f"the rare threshold must be at least 1 (got {rare_below})")
    profile = load_profile_dir(profile_dir)
    trace = load_trace(trace_path) if trace_path is not None else None
    docker = load_docker_default()
    inputs = {"profile": str(profile_dir)}
    if trace_path is not None:
        inputs["trace"] = str(trace_path)
    if manifest is not None:
        inputs["manifest"] = str(manifest)
    return Report(
        profile=gather_profile_facts(profile),
        provenance=gather_provenance(profile, trace, str(profile_dir)),
        activity=gather_activity(trace, profile.seccomp, rare_below) if trace is not None else None,
        capabilities=gather_capabilities(profile),
        argument_rules=tuple(argument_rules(profile.seccomp)),
        network=gather_network(trace),
        pod_security=gather_pod_security(Path(manifest), profile, container, pss_version)
        if manifest is not None
        else None,
        attack=gather_attack(profile, docker),
        runtime_default=gather_runtime_default(profile, docker),
        generated_at=(now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        inputs=inputs,
    )
