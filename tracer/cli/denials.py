"""`tracer denials`: the syscalls a complain-mode (or enforcing) profile logged, per container."""

from __future__ import annotations

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, OutputFormat, app
from tracer.files import to_json
from tracer.kube.audit import parse_since
from tracer.verify.complain import format_text, format_warnings, log_to_dict, read_log


@app.command("denials")
def denials_command(
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="T",
        help="Only records at or after T: RFC3339 (2024-06-03T09:00:00Z) "
        "or a duration back from now (30s, 10m, 2h, 1h30m).",
    ),
    source: str = typer.Option(
        "auto",
        "--source",
        metavar="[auto|audit|kmsg|journal]|FILE",
        help="Where to read: audit (/var/log/audit/audit.log), kmsg (/dev/kmsg, "
        "the kernel log dmesg shows), journal (journalctl -k), a saved copy "
        "of any of them (plain or gzip; - for stdin), or auto: audit.log when "
        "it exists and the kernel log.",
    ),
    cgroup: str | None = typer.Option(
        None,
        "--cgroup",
        metavar="PATH",
        help="Only processes of this cgroup v2 (as in /proc/PID/cgroup, or under /sys/fs/cgroup).",
    ),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """List the syscalls seccomp filters logged or refused, per container.

    Text has a section per container. Reads the kernel's seccomp audit records (type 1326 / SECCOMP). A profile written with
    `tracer generate --default-action log` allows everything but logs each syscall outside
    its allow-list: run the workload under it, then this lists what the profile still
    lacks (action log). Records of enforcing filters are listed too, with their action:
    errno (with the errno returned), kill_process, kill_thread, trap, trace, user_notif.

    Syscall numbers are named by the record's architecture. A record is placed in its
    process's cgroup while the process still runs (a container's cgroup); after it exited
    it is listed by pid, comm and exe. Times are the records' own audit stamps (UTC).

    Without auditd the kernel prints the records to its log, at most 10 per 5 seconds
    (printk rate limit); the messages it dropped are reported as a warning. The kernel
    writes a record only for actions in /proc/sys/kernel/seccomp/actions_logged. Reading
    /dev/kmsg needs root where kernel.dmesg_restrict is 1. Malformed records are counted
    and skipped. JSON: {"sources", "since", "records", "containers": [{"container",
    "cgroup", "pids", "syscalls": [{"syscall", "nr", "arch", "action", "errno", "count",
    "first", "last"}]}], "denials", "malformed", "suppressed"}.

    Exit status: 0 no records, 1 records found, 2 a source is missing or unreadable, or an
    option is invalid, 3 a problem of the machine.

    Examples:

    \b
      tracer denials --since 10m
      tracer denials --source kmsg --cgroup /kubepods.slice -f json
      dmesg | tracer denials --source -
    """
    since_time = parse_since(since) if since else None
    log = read_log(source, since_time, cgroup)
    if output_format is OutputFormat.json:
        typer.echo(to_json(log_to_dict(log, since_time)).decode(), nl=False)
    else:
        typer.echo(format_text(log, since_time))
    for warning in format_warnings(log):
        typer.echo(warning, err=True)
    raise typer.Exit(EXIT_FINDINGS if log.denials else EXIT_OK)
