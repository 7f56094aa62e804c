"""Sentences both renderers print, as plain text (each renderer escapes for its own format)."""

from __future__ import annotations

from tracer.network.surface import NetworkSurface
from tracer.report.model import AttackFacts, CapabilityFacts, Provenance, Recording, Report
from tracer.risk.attack import Route


def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def capabilities_headline(capabilities: CapabilityFacts) -> str:
    drop = ", ".join(capabilities.drop) or "nothing"
    if not capabilities.added:
        return f"none added (drop {drop})"
    return f"{', '.join(capabilities.added)} (drop {drop})"


def lost_text(provenance: Provenance) -> str:
    """'nothing lost', or what was lost; never silent when the counters are unknown."""
    if not provenance.lost_known:
        return "not known: no trace given and the profile's recording.json has no lost counters"
    lost = provenance.lost
    if not lost:
        return "nothing lost (every lost counter is zero)"
    return "lost: " + ", ".join(f"{reason} {count:,}" for reason, count in sorted(lost.items()))


def recording_lost_text(recording: Recording) -> str:
    if not recording.lost:
        return "not recorded"
    lost = recording.lost_nonzero
    if not lost:
        return "nothing lost"
    return ", ".join(f"{reason} {count:,}" for reason, count in sorted(lost.items()))


def recording_rows(recording: Recording) -> list[tuple[str, str]]:
    """(label, value) pairs for one recording, the ones it knows."""
    when = recording.started_at or "?"
    if recording.ended_at:
        when += f" .. {recording.ended_at}"
    target = " ".join(part for part in (recording.target_kind, recording.target_name) if part)
    rows = [
        ("recorded", when),
        ("where", f"host {recording.hostname}" if recording.hostname else None),
        ("target", target or None),
        (
            "kernel",
            " ".join(part for part in (recording.kernel, f"({recording.arch})" if recording.arch else None) if part)
            or None,
        ),
        ("runtime", recording.runtime),
        ("user", recording.user),
        ("read-only root", {True: "yes", False: "no"}.get(recording.rootfs_readonly)),
        ("capability checks from", recording.capability_source),
        ("switch to load", recording.load_switch),
        ("load test", recording.load_command),
        (
            "ended",
            " ".join(
                part
                for part in (
                    recording.stopped_by,
                    {
                        True: "(complete)",
                        False: "(incomplete: the recorder was stopped before its last checkpoint)",
                    }.get(recording.complete),
                )
                if part
            )
            or None,
        ),
        ("trace file", recording.source),
        ("lost counters", recording_lost_text(recording)),
    ]
    return [(label, value) for label, value in rows if value]


def trace_relation(provenance: Provenance) -> str | None:
    if not provenance.from_trace:
        return "No trace was given (--trace): the recordings below are the ones the profile names in recording.json."
    if provenance.trace_is_profiles_recording is True:
        return "The trace given is the recording this profile was generated from."
    if provenance.trace_is_profiles_recording is False:
        own = "; ".join(
            f"{recording.started_at or 'at an unknown time'} on kernel {recording.kernel or 'unknown'}"
            for recording in provenance.profiles_recordings
        )
        return (
            "The trace given is not one this profile was generated from: the chart shows this trace, checked "
            f"against the profile. The profile was generated from the recording of {own} (recording.json)."
        )
    return None


def route_text(route: Route) -> str:
    """'clone with arg 0 CLONE_NEWUSER', 'socket with arg 0 AF_INET, AF_INET6; arg 1 SOCK_RAW,
    SOCK_PACKET': flag variants (SOCK_RAW|SOCK_CLOEXEC) fold into their first value."""
    if route.kind == "capability" or not route.arguments:
        return route.describe()
    per_index = []
    for position, index in enumerate(route.argument_indices):
        labels = dict.fromkeys(combo[position].split("|")[0] for combo in route.arguments)
        per_index.append(f"arg {index} {', '.join(labels)}")
    return f"{route.name} with {'; '.join(per_index)}"


def routes_text(routes) -> str:
    return "; ".join(dict.fromkeys(route_text(route) for route in routes))


def attack_headline(facts: AttackFacts) -> str:
    closed = facts.closed
    beyond = len(facts.closed_beyond_runtime_default)
    return f"{len(facts.reachable)} reachable, {len(closed)} closed ({beyond} of them open under the runtime default)"


def pod_security_headline(report: Report) -> str:
    facts = report.pod_security
    if facts is None:
        return "not evaluated (no --manifest)"
    if not facts.objects:
        return "no pod template hardened"
    pairs = dict.fromkeys(f"{o.level_before} \u2192 {o.level_after}" for o in facts.objects)
    return "; ".join(pairs)


def syscalls_headline(report: Report) -> str:
    comparison = report.runtime_default
    return (
        f"{comparison.allowed} allowed; the runtime default allows {comparison.baseline}: "
        f"{percent(comparison.reduction)} of it refused"
    )


def argument_headline(report: Report) -> str:
    count = len(report.argument_rules)
    return "none: allowed syscalls take any arguments" if not count else f"{count} rule(s) with conditions"


def summary_figures(report: Report) -> list[tuple[str, str]]:
    """The key figures at the top of the page."""
    figures = [("Syscalls", syscalls_headline(report))]
    if report.activity is not None:
        figures.append(("Recorded", f"{len(report.activity.bars)} syscalls, {report.activity.total_calls:,} calls"))
    figures += [
        ("Capabilities", capabilities_headline(report.capabilities)),
        ("Argument conditions", argument_headline(report)),
        ("Network", network_headline(report)),
        ("Pod Security", pod_security_headline(report)),
        (f"ATT&CK v{report.attack.version}", attack_headline(report.attack)),
        ("Lost events", lost_text(report.provenance)),
    ]
    return figures


RARE_NOTE = (
    "Rare ({rule}) is marked \u25c6: confirm these with a longer load test before relying on the "
    "profile, and ask whether each is expected."
)


def listener_rows(surface: NetworkSurface) -> list[list[str]]:
    """[listener, who can reach it, whether binding it needed privilege] per listening socket."""
    rows = []
    for listener in surface.listening:
        reach = "the pod only (loopback)" if surface.loopback_only(listener) else "from outside the pod"
        privileged = (
            f"below {surface.unprivileged_port_start}: CAP_NET_BIND_SERVICE or a lower "
            "net.ipv4.ip_unprivileged_port_start"
            if listener.port < surface.unprivileged_port_start
            else "no"
        )
        rows.append([listener.describe(), reach, privileged])
    return rows


def destinations_text(surface: NetworkSurface) -> str | None:
    """Why there is no destination table: not recorded, or recorded and empty."""
    if surface.destinations is None:
        return "Not recorded: where the workload connected to is unknown (egress cannot be narrowed)."
    if not surface.destinations:
        return "Recorded: none (the workload connected nowhere)."
    return None


def destination_rows(surface: NetworkSurface) -> list[list[str]]:
    return [[destination.describe(), f"{destination.count:,}"] for destination in surface.destinations or ()]


def interface_rows(surface: NetworkSurface) -> list[list[str]]:
    return [
        [
            interface.name,
            interface.kind or ("loopback" if interface.loopback else "-"),
            "up" if interface.up else "down",
            ", ".join(interface.addresses) or "none",
        ]
        for interface in surface.interfaces
    ]


def network_headline(report: Report) -> str:
    surface = report.network.surface
    if surface is None:
        return "not recorded"
    reachable = len(surface.reachable_listeners())
    destinations = (
        "destinations not recorded" if surface.destinations is None else f"{len(surface.destinations)} destination(s)"
    )
    return f"{reachable} listener(s) reachable from outside the pod; {destinations}"
