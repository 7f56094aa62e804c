"""The report as one self-contained HTML page: inline CSS, inline SVG, no script, nothing fetched
(a Content-Security-Policy of default-src 'none' makes the browser refuse any fetch anyway).

Everything that comes from the inputs goes through `h`, which escapes it; only `Safe` strings,
built here from escaped parts, pass through as markup.
"""

from __future__ import annotations

from html import escape

from tracer.report import wording
from tracer.report.chart import syscall_chart_svg
from tracer.report.model import Evidence, Report, TechniqueRow


class Safe(str):
    """Markup built by this module from escaped parts. Adding text to it escapes the text."""

    def __add__(self, other) -> Safe:
        return Safe(str.__add__(self, h(other)))

    def __radd__(self, other) -> Safe:
        return Safe(str.__add__(h(other), self))


def h(value) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(escape("" if value is None else str(value), quote=True))


def join(parts, separator: str = "") -> Safe:
    return Safe(separator.join(h(part) for part in parts))


def tag(name: str, content="", cls: str | None = None) -> Safe:
    attribute = f' class="{h(cls)}"' if cls else ""
    return Safe(f"<{name}{attribute}>{h(content)}</{name}>")


def table(headers: list[str], rows: list[list], cls: str | None = None) -> Safe:
    head = join(tag("th", header) for header in headers)
    body = join(Safe(f"<tr>{join(tag('td', cell) for cell in row)}</tr>") for row in rows)
    attribute = f' class="{h(cls)}"' if cls else ""
    return Safe(f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def key_values(rows: list[tuple[str, str]]) -> Safe:
    return Safe(f'<dl class="kv">{join(tag("dt", label) + tag("dd", value) for label, value in rows)}</dl>')


def section(anchor: str, title: str, *content) -> Safe:
    return Safe(f'<section id="{h(anchor)}"><h2>{h(title)}</h2>{join(content)}</section>')


def paragraph(text, cls: str | None = None) -> Safe:
    return tag("p", text, cls)


def badge(text: str, kind: str) -> Safe:
    return tag("span", text, f"badge {kind}")


def code_list(names) -> Safe:
    return join((tag("code", name) for name in names), ", ") if names else Safe("none")


STYLE = """
:root{--ink:#202124;--muted:#5f6368;--line:#dadce0;--ok:#137333;--okbg:#e6f4ea;--bad:#a50e0e;--badbg:#fce8e6;
--warn:#8a5300;--warnbg:#fef7e0}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
margin:0 auto;max-width:1200px;padding:24px 32px 48px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px}
.sub,.note{color:var(--muted)}.note{font-size:13px}
code{font:12px/1.3 "DejaVu Sans Mono",Menlo,Consolas,monospace;background:#f1f3f4;padding:0 3px;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f8f9fa;font-weight:600}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px;margin:16px 0}
.figure{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.figure .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.figure .value{font-size:15px;font-weight:600;margin-top:2px}
dl.kv{display:grid;grid-template-columns:200px 1fr;gap:3px 12px;margin:6px 0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-word}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.open{color:var(--bad);background:var(--badbg)}.badge.closed{color:var(--ok);background:var(--okbg)}
.badge.warn{color:var(--warn);background:var(--warnbg)}
.chart{max-width:100%;height:auto}
details summary{cursor:pointer;color:var(--muted)}
footer{margin-top:32px;color:var(--muted);font-size:12px}
@media print{body{padding:0;max-width:none}section{break-inside:auto}h2{break-after:avoid}}
"""


# ---------------------------------------------------------------- sections


def header(report: Report) -> Safe:
    inputs = join((f"{key} {value}" for key, value in report.inputs.items()), " \u00b7 ")
    return Safe(
        f"<header><h1>Least-privilege security context: {h(report.profile.name)}</h1>"
        f'<p class="sub">{inputs}<br>generated {h(report.generated_at)} by seccomp-tracer '
        f"{h(report.tool_version)}</p></header>"
    )


def summary(report: Report) -> Safe:
    cards = join(
        Safe(f'<div class="figure"><div class="label">{h(label)}</div><div class="value">{h(value)}</div></div>')
        for label, value in wording.summary_figures(report)
    )
    return Safe(f'<section id="summary" class="figures">{cards}</section>')


def provenance(report: Report) -> Safe:
    facts = report.provenance
    parts = [paragraph(wording.trace_relation(facts), "note")] if wording.trace_relation(facts) else []
    if not facts.recordings:
        parts.append(paragraph("The profile names no recording (no recording.json) and no trace was given."))
    for recording in facts.recordings:
        parts.append(key_values(wording.recording_rows(recording)))
    parts.append(
        key_values(
            [
                ("profile", facts.profile_path),
                (
                    "generated by",
                    f"seccomp-tracer {facts.profile_tool_version}" if facts.profile_tool_version else "not recorded",
                ),
                ("lost events", wording.lost_text(facts)),
            ]
        )
    )
    return section("provenance", "Provenance", *parts)


def syscalls(report: Report) -> Safe:
    profile = report.profile
    rules = [
        paragraph(
            Safe(
                f"Default action {tag('code', profile.default_action)} on "
                f"{code_list(profile.architectures)}; {len(profile.allowed)} syscalls allowed: "
                f"{code_list(profile.allowed)}."
            )
        )
    ]
    rules += [paragraph(Safe(f"{tag('code', action)}: {code_list(names)}")) for action, names in profile.other_rules]
    activity = report.activity
    if activity is None:
        return section(
            "syscalls",
            "Syscalls by phase",
            paragraph("No trace given (--trace): calls per phase are not shown.", "note"),
            *rules,
        )
    per_phase = ", ".join(f"{phase} {activity.calls_in(phase):,}" for phase in activity.phases)
    parts = [
        paragraph(
            f"{len(activity.bars)} syscalls, {activity.total_calls:,} calls under the filter ({per_phase}); "
            "log scale, most called first."
        ),
        paragraph(wording.RARE_NOTE.format(rule=activity.rare_rule), "note"),
        Safe(syscall_chart_svg(activity)),
        paragraph(Safe(f"Rare: {code_list(activity.rare)}.")),
    ]
    refused = activity.refused_by_profile
    if refused:
        parts.append(
            paragraph(
                Safe(f"{badge('refused', 'open')} recorded but not allowed by this profile: {code_list(refused)}")
            )
        )
    else:
        parts.append(paragraph("Every syscall this trace recorded under the filter is allowed by the profile."))
    return section("syscalls", "Syscalls by phase", *parts, *rules)


def evidence_text(rows: tuple[Evidence, ...]) -> Safe:
    if not rows:
        return Safe("added by hand (--add-capability), no recorded check")
    return join((row.text() for row in rows), "; ")


def capabilities(report: Report) -> Safe:
    facts = report.capabilities
    parts = [paragraph(f"Drop {', '.join(facts.drop) or 'nothing'}; add only what the workload was seen to use.")]
    parts.append(tag("h3", "Added"))
    if facts.added:
        parts.append(
            table(
                ["capability", "needed by (syscall in phase, checks)"],
                [[cap, evidence_text(rows)] for cap, rows in facts.added.items()],
            )
        )
    else:
        parts.append(paragraph("None: no capability check was granted in the workload's phases."))
    parts.append(tag("h3", "Failed without (denied, the call failed; not added)"))
    if facts.failed_without:
        parts.append(
            table(
                ["capability", "calls that failed without it"],
                [[cap, evidence_text(rows)] for cap, rows in facts.failed_without.items()],
            )
        )
        parts.append(
            paragraph(
                "The recorded run went on without these; add one with generate --add-capability only "
                "if those calls must succeed.",
                "note",
            )
        )
    else:
        parts.append(paragraph("None."))
    parts.append(tag("h3", "Checked but not required"))
    if facts.not_required:
        parts.append(
            table(
                ["capability", "checks that decided nothing"],
                [[cap, evidence_text(rows)] for cap, rows in facts.not_required.items()],
            )
        )
    else:
        parts.append(paragraph("None."))
    return section("capabilities", "Capabilities", *parts)


def argument_conditions(report: Report) -> Safe:
    rules = report.argument_rules
    if not rules:
        return section(
            "arguments",
            "Argument conditions",
            paragraph("None: every syscall the profile allows is allowed with any arguments."),
        )
    rows = [
        [
            code_list(rule.names),
            rule.action,
            join((c.reads for c in rule.conditions), Safe("<br>")),
            join((c.raw for c in rule.conditions), Safe("<br>")),
            "; ".join(part for part in (rule.applies, rule.comment) if part),
        ]
        for rule in rules
    ]
    return section(
        "arguments",
        "Argument conditions",
        paragraph(
            "A rule matches when all its conditions hold; rules naming the same syscall are alternatives.", "note"
        ),
        table(["syscalls", "action", "condition", "as written", "applies / comment"], rows),
    )


def network(report: Report) -> Safe:
    surface = report.network.surface
    if surface is None:
        why = "the trace has no network section" if report.activity is not None else "no trace given"
        return section("network", "Network surface", paragraph(f"Not recorded ({why})."))
    parts = [tag("h3", "Listening")]
    rows = wording.listener_rows(surface)
    parts.append(table(["socket", "reachable", "privileged port"], rows) if rows else paragraph("Nothing listens."))
    parts.append(tag("h3", "Destinations"))
    empty = wording.destinations_text(surface)
    parts.append(
        paragraph(empty) if empty else table(["destination", "connections"], wording.destination_rows(surface))
    )
    parts.append(tag("h3", "Interfaces"))
    parts.append(table(["interface", "kind", "state", "addresses"], wording.interface_rows(surface)))
    return section("network", "Network surface", *parts)


def pod_security(report: Report) -> Safe:
    facts = report.pod_security
    if facts is None:
        return section(
            "pod-security",
            "Pod Security",
            paragraph("Not evaluated: give the workload's manifest with --manifest.", "note"),
        )
    rows = [
        [
            o.title,
            ", ".join(o.containers),
            o.level_before,
            o.level_after,
            join((f"{check}: {detail}" for check, detail in o.remaining), Safe("<br>")) or "nothing",
        ]
        for o in facts.objects
    ]
    parts = [
        paragraph(
            f"{facts.manifest}, hardened in memory as tracer k8s harden does (Localhost profile "
            f"{facts.localhost_profile}); levels as the Pod Security admission evaluates them."
        ),
        table(["object", "containers", "before", "after", "still keeps it from restricted"], rows),
    ]
    if facts.warnings:
        parts.append(tag("h3", "Notes"))
        parts.append(Safe(f"<ul>{join(tag('li', warning) for warning in facts.warnings)}</ul>"))
    return section("pod-security", "Pod Security", *parts)


def routes_cell(routes) -> Safe:
    if not routes:
        return badge("closed", "closed")
    return badge("open", "open") + " " + wording.routes_text(routes)


def technique_cell(row: TechniqueRow) -> Safe:
    mark = "" if row.technique.platform_containers else " (not tagged Containers)"
    return Safe(f'<a href="{h(row.technique.url)}">{h(row.technique.id)}</a> {h(row.technique.name)}{h(mark)}')


def profile_cell(row: TechniqueRow) -> Safe:
    if row.reachable:
        return routes_cell(row.profile)
    return badge("closed", "closed") + " " + "; ".join(row.closed_by)


def attack_table(report: Report) -> Safe:
    facts = report.attack
    rows = [
        [
            technique_cell(row),
            ", ".join(row.technique.tactics),
            routes_cell(row.unconfined),
            routes_cell(row.runtime_default),
            profile_cell(row),
        ]
        for row in facts.rows
    ]
    return section(
        "attack",
        f"MITRE ATT&CK for Containers (v{facts.version})",
        paragraph(
            f"{wording.attack_headline(facts)}. Columns: no seccomp profile (what Kubernetes runs without "
            "one), the runtime default, this profile; each with the runtime's default capabilities except "
            "this profile, which has its own.",
            "note",
        ),
        table(["technique", "tactics", "no seccomp", "runtime default", "this profile"], rows, "attack"),
    )


def runtime_default(report: Report) -> Safe:
    facts = report.runtime_default
    parts = [
        paragraph(
            f"{facts.allowed} syscalls allowed here; the runtime default (Docker's and containerd's "
            f"default profile) allows {facts.baseline} unconditionally: this profile refuses "
            f"{wording.percent(facts.reduction)} of them. Compared {facts.method}."
        )
    ]
    if facts.beyond:
        parts.append(tag("h3", "Allowed here, where the runtime default is stricter"))
        parts.append(
            table(
                ["syscall", "this profile", "runtime default"],
                [[tag("code", name), here, there] for name, here, there in facts.beyond],
            )
        )
    else:
        parts.append(paragraph("Nothing allowed here is refused or conditioned by the runtime default."))
    parts.append(
        Safe(
            f"<details><summary>Refused here, allowed by the runtime default: {len(facts.refused_here)} "
            f"syscalls</summary><p>{code_list(facts.refused_here)}</p></details>"
        )
    )
    return section("runtime-default", "Compared with the runtime default", *parts)


def render_html(report: Report) -> str:
    body = join(
        [
            header(report),
            summary(report),
            provenance(report),
            syscalls(report),
            capabilities(report),
            argument_conditions(report),
            network(report),
            pod_security(report),
            attack_table(report),
            runtime_default(report),
            Safe(
                "<footer>MITRE ATT&amp;CK\u00ae is a registered trademark of The MITRE Corporation; technique data "
                "\u00a9 The MITRE Corporation, reproduced with its permission.</footer>"
            ),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Security context review: {h(report.profile.name)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
