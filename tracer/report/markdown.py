"""The report as GitHub-flavoured Markdown, for a change request's description.

Markdown passes raw HTML through, so everything from the inputs is escaped twice over: HTML
characters become entities and Markdown's own (emphasis, links, code, table pipes) get a
backslash. The syscall chart becomes a table with a log-scale bar of block characters.
"""

from __future__ import annotations

import math
import re
from html import escape

from tracer.report import wording
from tracer.report.chart import AXIS_FLOOR, axis_top
from tracer.report.model import Evidence, Report, SyscallActivity, TechniqueRow

MARKDOWN_SPECIALS = re.compile(r"([\\`*\[\]|#~])")
# `_` is emphasis only at a word's edge (CommonMark), so CAP_SYS_ADMIN and rt_sigaction stay readable.
EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
BAR_CELLS = 24


def md(value) -> str:
    """Plain text from the inputs, safe inside a Markdown paragraph or table cell."""
    text = escape("" if value is None else str(value), quote=False)
    text = MARKDOWN_SPECIALS.sub(r"\\\1", text)
    text = EDGE_UNDERSCORE.sub(r"\\_", text)
    return " ".join(text.split())  # a newline would end a table row


def names(items) -> str:
    return ", ".join(md(item) for item in items) if items else "none"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Rows hold cells already made safe with md()."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def heading(title: str) -> list[str]:
    return [f"## {title}", ""]


def log_bar(count: int, top: int) -> str:
    if count <= 0:
        return ""
    return "\u2588" * max(1, round(BAR_CELLS * math.log10(count / AXIS_FLOOR) / math.log10(top / AXIS_FLOOR)))


# ---------------------------------------------------------------- sections


def header(report: Report) -> list[str]:
    inputs = " \u00b7 ".join(f"{md(key)} {md(value)}" for key, value in report.inputs.items())
    lines = [
        f"# Least-privilege security context: {md(report.profile.name)}",
        "",
        f"{inputs}  ",
        f"generated {md(report.generated_at)} by seccomp-tracer {md(report.tool_version)}",
        "",
    ]
    lines += table(["", ""], [[f"**{md(label)}**", md(value)] for label, value in wording.summary_figures(report)])
    return lines


def provenance(report: Report) -> list[str]:
    facts = report.provenance
    lines = heading("Provenance")
    relation = wording.trace_relation(facts)
    if relation:
        lines += [md(relation), ""]
    for recording in facts.recordings:
        lines += table(["", ""], [[md(label), md(value)] for label, value in wording.recording_rows(recording)])
    lines += [f"Profile {md(facts.profile_path)}; lost events: {md(wording.lost_text(facts))}.", ""]
    return lines


def chart_rows(activity: SyscallActivity) -> list[list[str]]:
    top = axis_top(max((bar.total for bar in activity.bars), default=1))
    rows = []
    for bar in activity.bars:
        name = md(bar.name) if bar.allowed else f"~~{md(bar.name)}~~ (refused)"
        rows.append(
            [
                ("\u25c6 " if bar.rare else "") + name,
                *(f"{bar.calls.get(phase, 0):,}" for phase in activity.phases),
                f"{bar.total:,}",
                log_bar(bar.total, top),
            ]
        )
    return rows


def syscalls(report: Report) -> list[str]:
    profile = report.profile
    lines = heading("Syscalls by phase")
    activity = report.activity
    if activity is None:
        lines += ["No trace given (--trace): calls per phase are not shown.", ""]
    else:
        lines += [
            f"{len(activity.bars)} syscalls, {activity.total_calls:,} calls under the filter; bar: total "
            "calls, log scale. " + md(wording.RARE_NOTE.format(rule=activity.rare_rule)),
            "",
        ]
        lines += table(["syscall", *activity.phases, "total", "log scale"], chart_rows(activity))
        refused = activity.refused_by_profile
        lines += [
            f"**Recorded but refused by this profile:** {names(refused)}"
            if refused
            else "Every syscall this trace recorded under the filter is allowed by the profile.",
            "",
        ]
    lines += [
        f"Default action {md(profile.default_action)} on {names(profile.architectures)}; "
        f"{len(profile.allowed)} syscalls allowed: {names(profile.allowed)}.",
        "",
    ]
    lines += [f"{md(action)}: {names(rule_names)}" for action, rule_names in profile.other_rules]
    return lines + ([""] if profile.other_rules else [])


def evidence_cell(rows: tuple[Evidence, ...]) -> str:
    if not rows:
        return "added by hand (--add-capability), no recorded check"
    return "; ".join(md(row.text()) for row in rows)


def capability_table(title: str, rows: dict, empty: str) -> list[str]:
    lines = [f"### {title}", ""]
    if not rows:
        return lines + [empty, ""]
    return lines + table(["capability", "evidence"], [[md(cap), evidence_cell(found)] for cap, found in rows.items()])


def capabilities(report: Report) -> list[str]:
    facts = report.capabilities
    lines = heading("Capabilities") + [f"Drop {names(facts.drop)}; add only what the workload was seen to use.", ""]
    lines += capability_table("Added", facts.added, "None: no capability check was granted in the workload's phases.")
    lines += capability_table("Failed without (denied, the call failed; not added)", facts.failed_without, "None.")
    lines += capability_table("Checked but not required", facts.not_required, "None.")
    return lines


def argument_conditions(report: Report) -> list[str]:
    lines = heading("Argument conditions")
    if not report.argument_rules:
        return lines + ["None: every syscall the profile allows is allowed with any arguments.", ""]
    rows = [
        [
            names(rule.names),
            md(rule.action),
            md(rule.reads()),
            md("; ".join(c.raw for c in rule.conditions)),
            md("; ".join(part for part in (rule.applies, rule.comment) if part)),
        ]
        for rule in report.argument_rules
    ]
    return lines + table(["syscalls", "action", "condition", "as written", "applies / comment"], rows)


def network(report: Report) -> list[str]:
    surface = report.network.surface
    lines = heading("Network surface")
    if surface is None:
        why = "the trace has no network section" if report.activity is not None else "no trace given"
        return lines + [f"Not recorded ({why}).", ""]
    listeners = wording.listener_rows(surface)
    lines += ["### Listening", ""]
    lines += (
        table(["socket", "reachable", "privileged port"], [[md(v) for v in row] for row in listeners])
        if listeners
        else ["Nothing listens.", ""]
    )
    lines += ["### Destinations", ""]
    empty = wording.destinations_text(surface)
    lines += (
        [md(empty), ""]
        if empty
        else table(["destination", "connections"], [[md(v) for v in row] for row in wording.destination_rows(surface)])
    )
    lines += ["### Interfaces", ""]
    return lines + table(
        ["interface", "kind", "state", "addresses"], [[md(v) for v in row] for row in wording.interface_rows(surface)]
    )


def pod_security(report: Report) -> list[str]:
    facts = report.pod_security
    lines = heading("Pod Security")
    if facts is None:
        return lines + ["Not evaluated: give the workload's manifest with --manifest.", ""]
    lines += [
        f"{md(facts.manifest)}, hardened in memory as tracer k8s harden does (Localhost profile "
        f"{md(facts.localhost_profile)}).",
        "",
    ]
    rows = [
        [
            md(o.title),
            names(o.containers),
            md(o.level_before),
            md(o.level_after),
            "; ".join(md(f"{check}: {detail}") for check, detail in o.remaining) or "nothing",
        ]
        for o in facts.objects
    ]
    lines += table(["object", "containers", "before", "after", "still keeps it from restricted"], rows)
    lines += [f"- {md(warning)}" for warning in facts.warnings]
    return lines + ([""] if facts.warnings else [])


def routes_cell(routes) -> str:
    return f"open: {md(wording.routes_text(routes))}" if routes else "closed"


def profile_cell(row: TechniqueRow) -> str:
    return routes_cell(row.profile) if row.reachable else f"**closed**: {md('; '.join(row.closed_by))}"


def attack_table(report: Report) -> list[str]:
    facts = report.attack
    lines = heading(f"MITRE ATT&CK for Containers (v{md(facts.version)})")
    lines += [
        md(wording.attack_headline(facts)) + ". Columns: no seccomp profile, the runtime default (both with "
        "the runtime's default capabilities), this profile.",
        "",
    ]
    rows = [
        [
            f"[{md(row.technique.id)}]({row.technique.url}) {md(row.technique.name)}",
            md(", ".join(row.technique.tactics)),
            routes_cell(row.unconfined),
            routes_cell(row.runtime_default),
            profile_cell(row),
        ]
        for row in facts.rows
    ]
    return lines + table(["technique", "tactics", "no seccomp", "runtime default", "this profile"], rows)


def runtime_default(report: Report) -> list[str]:
    facts = report.runtime_default
    lines = heading("Compared with the runtime default")
    lines += [
        f"{facts.allowed} syscalls allowed here; the runtime default allows {facts.baseline} unconditionally: "
        f"this profile refuses {wording.percent(facts.reduction)} of them. Compared {md(facts.method)}.",
        "",
    ]
    if facts.beyond:
        lines += ["Allowed here, where the runtime default is stricter:", ""]
        lines += table(
            ["syscall", "this profile", "runtime default"],
            [[md(name), md(here), md(there)] for name, here, there in facts.beyond],
        )
    lines += [
        f"Refused here, allowed by the runtime default ({len(facts.refused_here)}): {names(facts.refused_here)}.",
        "",
    ]
    return lines


def render_markdown(report: Report) -> str:
    lines = []
    for part in (
        header,
        provenance,
        syscalls,
        capabilities,
        argument_conditions,
        network,
        pod_security,
        attack_table,
        runtime_default,
    ):
        lines += part(report)
    lines.append(
        "MITRE ATT&CK\u00ae is a registered trademark of The MITRE Corporation; technique data \u00a9 The "
        "MITRE Corporation, reproduced with its permission."
    )
    return "\n".join(lines) + "\n"
