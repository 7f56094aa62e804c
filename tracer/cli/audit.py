"""`tracer audit`: Pod Security findings from kube-apiserver audit logs (see tracer.kube.audit)."""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, OutputFormat, app
from tracer.files import to_json
from tracer.kube.audit import analyze, parse_since


@app.command("audit")
def audit_command(
    logs: list[Path] = typer.Argument(
        ...,
        metavar="AUDIT_LOG...",
        show_default=False,
        help="kube-apiserver audit logs: JSON lines or one EventList document, "
        "plain or gzip (recognised by content, not by name).",
    ),
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", metavar="NS", help="Only this namespace (repeat for more)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="T",
        help="Only events at or after T: RFC3339 (2024-06-03T09:00:00Z) "
        "or a duration back from now (30m, 2h, 7d, 1h30m).",
    ),
    output_format: OutputFormat = FORMAT_OPTION,
    suggest: bool = typer.Option(
        False, "--suggest", help="Add, per finding, the smallest securityContext change or exemption that clears it."
    ),
) -> None:
    """Report the Pod Security findings in kube-apiserver audit logs.

    Text has a section per namespace and workload. Reads audit.k8s.io/v1 Events and collects, per namespace and workload (the Deployment,
    StatefulSet, DaemonSet, CronJob or Job that owns the pods; bare pods by name): each
    violated Pod Security check (upstream check ids such as runAsNonRoot or
    capabilities_restricted), the policy level:version, the mode (enforce = the request
    was denied with 403; audit = the pod-security.kubernetes.io/audit-violations
    annotation), how often, first and last seen, and who asked (user, impersonated user,
    user agent). Exemptions (pod-security.kubernetes.io/exempt) and policy errors
    (pod-security.kubernetes.io/error) are listed separately. Warn-mode results are not
    in audit logs: the API server returns them only to the client.

    Only ResponseComplete/Panic events are counted, once per auditID. Malformed lines
    (bad JSON, JSON that is not an Event, an Event with a wrongly typed field, a
    truncated gzip tail) are reported as FILE:LINE: PROBLEM and skipped; lines without
    Pod Security content in the API server's own form are counted, not parsed.

    Exit status: 0 no findings, 1 denials or audit violations found, 2 a log is missing,
    unreadable, a directory, empty or not an audit log (no audit.k8s.io Event in its
    first 100 lines, binary data, a corrupt gzip stream), a line over 64 MiB or more than
    64 GiB decompressed, or an option is invalid, 3 a problem of the machine.

    Examples:

    \b
      tracer audit /var/log/kubernetes/audit/audit.log --since 24h
      tracer audit audit.log.gz audit.log -n nim --suggest -f json
    """
    report = analyze(logs, namespace, parse_since(since) if since else None)
    result = report.to_dict(suggest=suggest)
    if output_format is OutputFormat.json:
        sys.stdout.buffer.write(to_json(result))
        sys.stdout.flush()
    else:
        typer.echo(render_text(result, suggest, report.malformed_lines), nl=False)
    raise typer.Exit(EXIT_FINDINGS if result["findings"] else EXIT_OK)


# --- text -------------------------------------------------------------------------------


def render_text(result: dict, suggest: bool, malformed_lines: int | None = None) -> str:
    """`malformed_lines`: all malformed lines, where result["malformed"] lists only the first of each file."""
    lines = [_summary(result, malformed_lines)]
    if result["malformed"]:
        lines += ["", "skipped input:"]
        lines += [f"  {m['file']}:{m['line']}: {m['problem']}" for m in result["malformed"]]
    for namespace, in_namespace in groupby(result["findings"], key=lambda f: f["namespace"]):
        lines += ["", f"namespace {namespace or '(cluster-scoped)'}"]
        for (_, kind, workload), findings in groupby(in_namespace, key=_workload_key):
            lines += [f"  {kind} {workload}", *_workload_section(list(findings), suggest)]
    if result["exemptions"]:
        lines += ["", "exempt (admitted without evaluation):"]
        lines += [
            f"  {e['namespace']} {e['kind']} {e['workload']}: {e['reason']} exemption, "
            f"{_seen(e)}, by {', '.join(e['users'])}"
            for e in result["exemptions"]
        ]
    if result["errors"]:
        lines += ["", "policy errors:"]
        lines += [
            f"  {e['namespace']} {e['kind']} {e['workload']}: {e['error']} ({_seen(e)})" for e in result["errors"]
        ]
    return "\n".join(lines) + "\n"


def _summary(result: dict, malformed_lines: int | None) -> str:
    findings = result["findings"]
    workloads = {_workload_key(f) for f in findings}
    by_mode = ", ".join(f"{sum(f['mode'] == mode for f in findings)} {mode}" for mode in ("enforce", "audit"))
    malformed = len(result["malformed"]) if malformed_lines is None else malformed_lines
    return (
        f"{len(result['files'])} audit log(s): {result['events_read']} events read, "
        f"{malformed} malformed; {len(findings)} findings ({by_mode}) "
        f"in {len(workloads)} workload(s)"
    )


def _workload_key(finding: dict) -> tuple[str, str, str]:
    return finding["namespace"], finding["kind"], finding["workload"]


def _workload_section(findings: list[dict], suggest: bool) -> list[str]:
    rows = [("CHECK", "MODE", "POLICY", "COUNT", "FIRST SEEN", "LAST SEEN")]
    rows += [
        (
            f["check"],
            f["mode"],
            f"{f['level']}:{f['version']}",
            str(f["count"]),
            _short(f["first_seen"]),
            _short(f["last_seen"]),
        )
        for f in findings
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "    "
        + "  ".join(cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]
    lines.append("    requested by: " + (", ".join(_union(f["users"] for f in findings)) or "-"))
    lines.append("    clients: " + (", ".join(_union(f["user_agents"] for f in findings)) or "-"))
    lines.append("    details:")
    lines += [f"      {check}: {detail}" for check, detail in _unique_pairs(findings, "details")]
    if suggest:
        lines.append("    to clear:")
        lines += [f"      {check}: {text}" for check, text in _unique_pairs(findings, "suggestion")]
    return lines


def _unique_pairs(findings: list[dict], field: str) -> list[tuple[str, str]]:
    """(check, value) once each: enforce and audit findings of a check usually say the same."""
    pairs: list[tuple[str, str]] = []
    for finding in findings:
        values = finding[field] if isinstance(finding[field], list) else [finding[field]]
        for value in values or ["-"]:
            if (finding["check"], value) not in pairs:
                pairs.append((finding["check"], value))
    return pairs


def _union(groups) -> list[str]:
    return sorted({item for group in groups for item in group})


def _short(stamp: str) -> str:
    """2024-06-03T09:14:02.359000Z -> 2024-06-03T09:14:02Z: seconds are enough for a table."""
    return stamp.split(".")[0] + "Z" if "." in stamp else stamp


def _seen(entry: dict) -> str:
    return f"{entry['count']}x, {_short(entry['first_seen'])} .. {_short(entry['last_seen'])}"
