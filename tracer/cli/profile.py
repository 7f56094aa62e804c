"""`tracer generate`, `merge` and `diff`: from traces to a profile directory, and comparisons."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from tracer.capabilities import parse_capability
from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, OutputFormat, app, input_paths, is_stdout, print_json
from tracer.errors import InputError


class DefaultAction(str, Enum):
    errno = "errno"
    kill = "kill"
    log = "log"


@app.command()
def generate(
    traces: list[Path] = typer.Argument(
        ..., metavar="TRACE...", help="One or more traces (several are combined); - reads one from standard input."
    ),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Profile directory to write."),
    default_action: DefaultAction = typer.Option(
        DefaultAction.errno,
        "--default-action",
        help="What the profile does with any other syscall: errno (fail with EPERM), kill, or log (allow and log: complain mode).",
    ),
    add_capability: list[str] = typer.Option(
        [],
        "--add-capability",
        metavar="CAP",
        help="Add a capability by hand, e.g. one a call failed without during the recording: CHOWN, cap_chown and CAP_CHOWN are the same (repeatable).",
    ),
    min_runs: int = typer.Option(
        1,
        "--min-runs",
        min=1,
        metavar="K",
        help="With merged traces: keep only syscalls that appeared in at least K runs.",
    ),
    add_from_log: list[Path] = typer.Option(
        [],
        "--add-from-log",
        metavar="FILE",
        help="Also allow the syscalls a complain-mode run logged: a saved audit.log, dmesg or journal (see tracer denials; repeatable).",
    ),
    allow_incomplete: bool = typer.Option(
        False,
        "--allow-incomplete",
        help="Write a profile even from a recording that ended without its last checkpoint (complete: false) or missed the workload's start-up (startup_missed: true).",
    ),
    arguments: bool = typer.Option(
        True,
        "--args/--no-args",
        help="Condition clone, clone3, unshare, setns, socket, socketpair, personality and prctl on the recorded arguments (default); --no-args writes names only.",
    ),
    ioctl_requests: bool = typer.Option(
        False,
        "--ioctl-requests",
        help="Also allow ioctl only with the request numbers recorded (terminal state differs between environments: record where the workload runs).",
    ),
    fmt: OutputFormat = FORMAT_OPTION,
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
    what the recording says about the process. The directory is replaced as a unit: readers
    see the old profile or the new one, never a mix (other files in it are carried over).
    An incomplete recording is refused unless --allow-incomplete.

    Exit status: 0 ok, 2 usage or input error (a bad or incomplete trace, an unknown
    capability; DIR is left as it was), 3 a problem of the machine (a full file system; the
    old profile is left as it was).

    Examples:

    \b
      tracer generate nim.trace.json --out profiles/nim
      tracer generate merged.trace.json --min-runs 2 --out profiles/nim
      tracer generate nim.trace.json --add-capability NET_BIND_SERVICE --out profiles/nim
      tracer generate nim.trace.json --default-action log --out profiles/nim-complain
    """
    from tracer.profile.generate import ProfileOptions, plan_profile, write_profile_dir
    from tracer.trace.format import load_trace

    capabilities = [parse_capability(name, "--add-capability") for name in add_capability]
    loaded = [load_trace(path) for path in input_paths(traces)]
    extra = _syscalls_from_logs(add_from_log, loaded[0].arch)
    draft = plan_profile(
        loaded,
        ProfileOptions(
            default_action.value,
            tuple(extra),
            add_capabilities=tuple(capabilities),
            min_runs=min_runs,
            allow_incomplete=allow_incomplete,
            arguments=arguments,
            ioctl_requests=ioctl_requests,
        ),
    )
    against = draft.against_runtime_default(str(out))
    write_profile_dir(draft, out)
    for warning in draft.warnings:
        typer.echo(f"warning: {warning}", err=True)
    caps = draft.capabilities["add"]
    failed_without = draft.capabilities["failed_without"]
    policy, profile = draft.policy, draft.filter
    if fmt is OutputFormat.json:
        print_json(
            {
                "out": str(out),
                "allowed": draft.syscalls.allowed,
                "enosys": sorted(profile.names_enosys()),
                "conditions": [{"syscall": r.syscall, "allows": r.allows} for r in policy.rules],
                "warnings": policy.warnings,
                "capabilities": caps,
                "failed_without": failed_without,
                "left_out": draft.left_out,
                "rare": draft.rare,
                "against_runtime_default": against.to_json(),
            }
        )
    else:
        typer.echo(
            f"{out}/seccomp.json: {len(profile.names_allowed())} syscalls allowed "
            f"({len(profile.names_conditioned())} only with the recorded arguments), "
            f"default {profile.default.action}"
        )
        for note in policy.notes:
            typer.echo(f"  {note}")
        for warning in policy.warnings:
            typer.echo(f"warning: {warning}", err=True)
        if extra:
            typer.echo(f"added from the seccomp log: {' '.join(extra)}")
        if draft.left_out:
            typer.echo(f"left out (in fewer than {min_runs} runs): {' '.join(draft.left_out)}")
        if draft.rare:
            typer.echo(f"rare (seen in one run only; confirm with a longer load test): {' '.join(draft.rare)}")
        typer.echo(f"{out}/capabilities.json: add {', '.join(caps) if caps else 'nothing'}, drop ALL")
        for cap, rows in failed_without.items():
            calls = ", ".join(f"{r['syscall']} {r['count']}x" for r in rows)
            typer.echo(
                f"note: calls failed without {cap} ({calls}); the run went on without it. "
                f"--add-capability {cap} if they must succeed."
            )
        typer.echo(f"against the runtime default: {against.verdict()}")
        for widening in against.wider:
            typer.echo(f"  wider: {widening.rule} ({'; '.join(widening.evidence) or 'no recorded evidence: FINDING'})")


def _syscalls_from_logs(logs: list[Path], arch: str) -> list[str]:
    from tracer.verify.complain import syscalls_from_log

    for log in logs:
        if not log.is_file():
            raise InputError(log, "no such file (a saved audit.log, dmesg or journalctl -k output)")
    return sorted({name for log in logs for name in syscalls_from_log(log, arch=arch)})


@app.command()
def merge(
    traces: list[Path] = typer.Argument(
        ...,
        metavar="TRACE...",
        help="Traces of the same workload: replicas, nodes, repeated load tests; - reads one from standard input.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="TRACE",
        help="Merged trace to write; - writes it to standard output (the summary then goes to stderr).",
    ),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Merge recordings into one trace: the union of every run, with per-run counts.

    For each syscall and capability the merged trace keeps the number of runs it appeared
    in. Syscalls seen in one run only are listed as rare: a longer load test should
    confirm them. `generate --min-runs K` keeps only what appeared in at least K runs (and
    the capability evidence of what it leaves out). A recording given twice counts once;
    recordings of different workloads (images, bundles, targets) are merged with a warning.

    Exit status: 0 ok, 2 a missing or bad trace, traces of different architectures,
    counters that would pass 2^64-1, 3 a problem of the machine.

    Examples:

    \b
      tracer merge node-*.trace.json --out nim.merged.trace.json
      tracer merge a.trace.json b.trace.json --out - | tracer show -
    """
    from tracer.profile.merge import merge_runs, rare_syscalls
    from tracer.trace.format import load_trace, trace_to_document, write_trace

    result = merge_runs([load_trace(path) for path in input_paths(traces)])
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    merged = result.trace
    summary_stream = sys.stderr if is_stdout(out) else sys.stdout
    if is_stdout(out):
        print_json(trace_to_document(merged))
    else:
        write_trace(merged, out)
    rare = rare_syscalls(merged)
    if fmt is OutputFormat.json:
        print_json(
            {"out": str(out), "runs": merged.runs["count"], "syscalls": merged.runs["syscalls"], "rare": rare},
            stream=summary_stream,
        )
    else:
        typer.echo(f"{out}: {merged.runs['count']} runs, {len(merged.runs['syscalls'])} syscalls", file=summary_stream)
        if rare and merged.runs["count"] > 1:
            typer.echo(f"rare (seen in one run only): {' '.join(rare)}", file=summary_stream)


@app.command("diff")
def diff_command(
    old: Path = typer.Argument(..., metavar="OLD", help="Profile directory, seccomp.json or trace."),
    new: Path = typer.Argument(..., metavar="NEW", help="Profile directory, seccomp.json or trace."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Compare two profiles or traces: syscalls and capabilities added and removed.

    Where both name the image they were recorded from (a pod's trace, by digest; a profile's
    recording.json), a different image is shown as `~ image OLD -> NEW`.

    The check a reviewer runs when the NIM image is upgraded: record the new image,
    then diff the committed profile against the new trace.

    Exit status: 0 NEW needs nothing OLD does not grant, 1 NEW needs more (a syscall or a
    capability added), 2 a missing or bad profile or trace, 3 a problem of the machine.

    Examples:

    \b
      tracer diff profiles/nim nim-2.0.trace.json
      tracer diff profiles/nim/seccomp.json profiles/nim-2.0 -f json
    """
    from tracer.profile.diff import diff

    result = diff(old, new)
    if fmt is OutputFormat.json:
        print_json(result.to_json())
    else:
        typer.echo(result.to_text())
    raise typer.Exit(EXIT_FINDINGS if result.needs_more else EXIT_OK)
