"""`tracer generate`, `merge` and `diff`: from traces to a profile directory, and comparisons."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, app, check_format, print_json
from tracer.errors import InputError


@app.command()
def generate(
    traces: list[Path] = typer.Argument(..., metavar="TRACE...", help="One or more traces (several are combined)."),
    out: Path = typer.Option(..., "--out", "-o", help="Profile directory to write."),
    default_action: str = typer.Option("errno", "--default-action", help="What the profile does with any other syscall: errno (EPERM), kill, or log (allow and log: complain mode)."),
    add_capability: list[str] = typer.Option([], "--add-capability", metavar="CAP", help="Add a capability by hand (e.g. one a call failed without during the recording)."),
    min_runs: int = typer.Option(1, "--min-runs", min=1, metavar="K", help="With merged traces: keep only syscalls that appeared in at least K runs."),
    add_from_log: list[Path] = typer.Option([], "--add-from-log", metavar="FILE", help="Also allow the syscalls a complain-mode run logged: a saved audit.log, dmesg or journal (see tracer denials)."),
    arguments: bool = typer.Option(True, "--args/--no-args", help="Condition clone, clone3, unshare, setns, socket, socketpair, personality and prctl on the recorded arguments (default); --no-args writes names only."),
    ioctl_requests: bool = typer.Option(False, "--ioctl-requests", help="Also allow ioctl only with the request numbers recorded (terminal state differs between environments: record where the workload runs)."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Write a least-privilege profile directory from traces.

    DIR/seccomp.json is an OCI runtime-spec LinuxSeccomp object (runc accepts it): one
    allow rule with the sorted names of every syscall the workload made in phases startup
    and load; the container runtime's own set-up is left out. The syscalls whose arguments
    decide danger are allowed only with the recorded values (clone: the namespace flags
    seen; socket: the families and netlink protocols seen; ...); clone3 answers ENOSYS so
    that libraries fall back to clone, as do syscalls that only ever returned ENOSYS. A
    trace without argument data gets the runtime default's conditions. The profile is then
    compared with the runtime default (see tracer risk) and the verdict printed.
    DIR/capabilities.json lists {"add", "drop": ["ALL"], "evidence"}: a capability is
    added when a check for it was granted in the workload's phases (advisory no-audit checks
    aside); one that calls failed without is reported, not added. DIR/recording.json says
    what the recording says about the process. Exit status 0, or 2 for bad input.
    """
    from tracer.profile.generate import generate as write_profile
    from tracer.profile.seccomp import allowed_names, conditioned_names
    from tracer.trace import load_trace

    check_format(fmt)
    loaded = [load_trace(path) for path in traces]
    extra = _syscalls_from_logs(add_from_log, loaded[0].arch)
    result = write_profile(loaded, out, default_action, extra_syscalls=extra, add_capabilities=add_capability,
                           min_runs=min_runs, arguments=arguments, ioctl_requests=ioctl_requests)
    caps = result["capabilities"]["add"]
    failed_without = result["capabilities"]["failed_without"]
    policy, against = result["policy"], result["against"]
    if fmt == "json":
        print_json({"out": str(out), "allowed": result["syscalls"].allowed, "enosys": sorted(enosys_names(result["seccomp"])),
                     "conditions": [{"syscall": r.syscall, "allows": r.allows} for r in policy.rules],
                     "warnings": policy.warnings, "capabilities": caps, "failed_without": failed_without,
                     "against_runtime_default": against.to_json()})
    else:
        conditioned = conditioned_names(result["seccomp"])
        typer.echo(f"{out}/seccomp.json: {len(allowed_names(result['seccomp']))} syscalls allowed "
                   f"({len(conditioned)} only with the recorded arguments), default {result['seccomp']['defaultAction']}")
        for note in policy.notes:
            typer.echo(f"  {note}")
        for warning in policy.warnings:
            typer.echo(f"warning: {warning}", err=True)
        if extra:
            typer.echo(f"added from the seccomp log: {' '.join(extra)}")
        if result["left_out"]:
            typer.echo(f"left out (in fewer than {min_runs} runs): {' '.join(result['left_out'])}")
        if result["rare"]:
            typer.echo(f"rare (seen in one run only; confirm with a longer load test): {' '.join(result['rare'])}")
        typer.echo(f"{out}/capabilities.json: add {', '.join(caps) if caps else 'nothing'}, drop ALL")
        for cap, rows in failed_without.items():
            calls = ", ".join(f"{r['syscall']} {r['count']}x" for r in rows)
            typer.echo(f"note: calls failed without {cap} ({calls}); the run went on without it. "
                       f"--add-capability {cap} if they must succeed.")
        typer.echo(f"against the runtime default: {against.verdict()}")
        for widening in against.wider:
            typer.echo(f"  wider: {widening.rule} ({'; '.join(widening.evidence) or 'no recorded evidence: FINDING'})")


def enosys_names(seccomp: dict) -> set[str]:
    return {name for rule in seccomp["syscalls"] if rule.get("errnoRet") == 38 for name in rule["names"]}


def _syscalls_from_logs(logs: list[Path], arch: str) -> list[str]:
    from tracer.verify.complain import syscalls_from_log

    for log in logs:
        if not log.is_file():
            raise InputError(log, "no such file (a saved audit.log, dmesg or journalctl -k output)")
    return sorted({name for log in logs for name in syscalls_from_log(log, arch=arch)})


@app.command()
def merge(
    traces: list[Path] = typer.Argument(..., metavar="TRACE...", help="Traces of the same workload: replicas, nodes, repeated load tests."),
    out: Path = typer.Option(..., "--out", "-o", help="Merged trace to write."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Merge recordings into one trace: the union of what every run did, and for each
    syscall and capability the number of runs it appeared in. Syscalls seen in one run
    only are listed as rare: a longer load test should confirm them. `generate
    --min-runs K` keeps only what appeared in at least K runs. Exit 0, or 2 for bad input.
    """
    from tracer.profile.merge import merge_traces, rare_syscalls
    from tracer.trace import load_trace, write_trace

    check_format(fmt)
    merged = merge_traces([load_trace(path) for path in traces])
    write_trace(merged, out)
    rare = rare_syscalls(merged)
    if fmt == "json":
        print_json({"out": str(out), "runs": merged.runs["count"], "syscalls": merged.runs["syscalls"], "rare": rare})
    else:
        typer.echo(f"{out}: {merged.runs['count']} runs, {len(merged.runs['syscalls'])} syscalls")
        if rare and merged.runs["count"] > 1:
            typer.echo(f"rare (seen in one run only): {' '.join(rare)}")


@app.command("diff")
def diff_command(
    old: Path = typer.Argument(..., metavar="OLD", help="Profile directory, seccomp.json or trace."),
    new: Path = typer.Argument(..., metavar="NEW", help="Profile directory, seccomp.json or trace."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Compare two profiles or traces: syscalls and capabilities added and removed.

    Exit 1 when NEW needs more than OLD grants (the check a reviewer runs when the NIM
    image is upgraded), 0 otherwise, 2 for bad input.
    """
    from tracer.profile.diff import diff

    check_format(fmt)
    result = diff(old, new)
    if fmt == "json":
        print_json(result.to_json())
    else:
        typer.echo(result.to_text())
    raise typer.Exit(EXIT_FINDINGS if result.needs_more else EXIT_OK)


