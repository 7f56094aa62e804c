"""The `tracer` command line: thin typer commands over the library modules.

Exit codes: 0 ok, 1 findings (a denied pod, a refused syscall, a profile that grew),
2 usage or input error (one line on stderr naming the file and the problem).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

try:  # typer >= 0.22 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from tracer import __version__
from tracer.errors import InputError

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2

app = typer.Typer(
    name="tracer",
    help=(
        "Record what a container really does with eBPF (every syscall and capability check, "
        "per phase) and turn it into a least-privilege OCI seccomp profile, a capability set "
        "and Kubernetes policy.\n\n"
        "Exit status: 0 ok, 1 findings, 2 usage or input error."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tracer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """seccomp-tracer."""


# ---------------------------------------------------------------- record / show / generate

FORMAT_OPTION = typer.Option("text", "--format", "-f", help="Output format: text for people, json for programs.")


def _check_format(fmt: str) -> str:
    if fmt not in ("text", "json"):
        raise InputError(None, f"unknown format {fmt!r} (text or json)")
    return fmt


def _print_json(obj, stream=None) -> None:
    from tracer.errors import to_json

    (stream or sys.stdout).write(to_json(obj).decode())


@app.command(context_settings={"allow_interspersed_args": False})
def record(
    out: Path = typer.Option(..., "--out", "-o", help="Trace file to write (checkpointed atomically every interval)."),
    command: list[str] = typer.Argument(None, metavar="[-- COMMAND ARGS...]",
                                        help="Run COMMAND in a new cgroup and record it; its output and exit status pass through."),
    runc: str = typer.Option(None, "--runc", metavar="ID", help="A runc container made with `runc create` and not yet started: attach, start it, stop when its init exits."),
    runc_bundle: str = typer.Option(None, "--runc-bundle", metavar="BUNDLE", help="Create a container from this OCI bundle and record it from before `runc create`; runc's own set-up is kept apart (phase runtime)."),
    runc_id: str = typer.Option(None, "--runc-id", metavar="ID", help="Container id for --runc-bundle (default tracer-PID)."),
    runc_root: str = typer.Option(None, "--runc-root", metavar="DIR", help="runc's state directory (runc --root)."),
    containerd: str = typer.Option(None, "--containerd", metavar="ID", help="A running containerd task."),
    namespace: str = typer.Option("default", "--namespace", help="containerd namespace of --containerd (k8s.io on Kubernetes nodes)."),
    containerd_state: Path = typer.Option(Path("/run/containerd"), "--containerd-state", metavar="DIR", help="containerd's state directory (its config's `state`)."),
    cgroup: str = typer.Option(None, "--cgroup", metavar="PATH", help="A cgroup v2, absolute or relative to the v2 mount."),
    pid: int = typer.Option(None, "--pid", help="The cgroup of this process (every process in it counts)."),
    kubernetes_pod: str = typer.Option(None, "--kubernetes-pod", metavar="NS/POD", help="A pod's container on this node, found through the CRI socket."),
    container: str = typer.Option(None, "--container", help="Container name within --kubernetes-pod."),
    duration: float = typer.Option(None, "--duration", min=0.1, help="Stop after this many seconds."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between checkpoints of the trace file."),
    ready_url: str = typer.Option(None, "--ready-url", metavar="URL", help="Switch from phase startup to load when URL first answers 2xx (SIGUSR1 switches by hand). Asked inside the container's network namespace when it joins a named one."),
    load: str = typer.Option(None, "--load", metavar="COMMAND", help="Shell command to run once phase load begins (e.g. scripts/loadtest.py); when it ends the target is stopped and the recording ends."),
    container_log: str = typer.Option(None, "--container-log", metavar="FILE", help="With --runc-bundle: append the container's output to FILE instead of passing it through."),
    capability_source: str = typer.Option("auto", "--capability-source", help="auto, tracepoint (capability:cap_capable) or kprobe (cap_capable, drops no-audit checks)."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Record every syscall and capability check of one container (or cgroup) with eBPF.

    Counts are aggregated in the kernel per phase (runtime set-up, startup, load) and
    written to TRACE every --interval seconds; Ctrl-C or SIGTERM stops cleanly with
    everything recorded so far. Counters the kernel could not record are reported.
    Needs root. Exit status: with -- COMMAND, the command's own when it ended by itself;
    otherwise 0, or 1 when counters were lost.
    """
    from tracer.recording import RecordOptions
    from tracer.recording import record as run_recording

    _check_format(fmt)
    target = _choose_target(command, runc, runc_bundle, runc_id, runc_root, containerd, namespace, cgroup, pid,
                            kubernetes_pod, container, container_log, containerd_state)
    result = run_recording(target, RecordOptions(out, interval, duration, ready_url, progress=fmt == "text",
                                                 capability_source=capability_source, load_command=load))
    trace = result.trace
    lost = {k: v for k, v in trace.lost.items() if v}
    calls = int(trace.calls_by_nr().sum())
    distinct = int((trace.calls_by_nr() > 0).sum())
    if fmt == "json":
        # A recorded command owns stdout; the summary then goes to stderr.
        _print_json({"out": str(out), "stopped_by": result.stopped_by, "exit_status": result.exit_status,
                     "calls": calls, "syscalls": distinct, "lost": trace.lost, "phase_changes": result.phase_changes,
                     "load_status": result.load_status},
                    stream=sys.stderr if target.kind == "command" else sys.stdout)
    else:
        typer.echo(f"recorded {calls:,} calls of {distinct} syscalls from {target.kind} {target.name} "
                   f"({result.stopped_by}) -> {out}", err=True)
        typer.echo("lost counters: " + (", ".join(f"{k} {v}" for k, v in lost.items()) if lost else "none"), err=True)
    if load:
        if fmt == "text":
            typer.echo(result.load_output.rstrip(), err=True)
        if result.load_status != 0:
            typer.echo(f"error: the load command {'never ran' if result.load_status is None else f'exited {result.load_status}'}", err=True)
            raise typer.Exit(EXIT_FINDINGS)
    if target.details.get("warning"):
        typer.echo(f"warning: {target.details['warning']}", err=True)
    if target.kind == "command" and result.stopped_by == "target finished":
        raise typer.Exit(result.exit_status)
    raise typer.Exit(EXIT_FINDINGS if lost else EXIT_OK)


def _choose_target(command, runc, runc_bundle, runc_id, runc_root, containerd, namespace, cgroup, pid, kubernetes_pod, container,
                   container_log=None, containerd_state=Path("/run/containerd")):
    from tracer import targets

    chosen = [name for name, value in (("-- COMMAND", command), ("--runc", runc), ("--runc-bundle", runc_bundle), ("--containerd", containerd),
                                       ("--cgroup", cgroup), ("--pid", pid), ("--kubernetes-pod", kubernetes_pod)) if value]
    if len(chosen) != 1:
        raise InputError(None, "choose exactly one target: --runc, --runc-bundle, --containerd, --cgroup, --pid, --kubernetes-pod or -- COMMAND"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    if command:
        return targets.CommandTarget.create(command)
    if runc:
        return targets.RuncTarget.create(runc, runc_root)
    if runc_bundle:
        return targets.RuncBundleTarget.create(runc_bundle, runc_id, runc_root, container_log)
    if containerd:
        return targets.containerd_target(containerd, namespace, containerd_state)
    if cgroup:
        return targets.cgroup_target(cgroup)
    if pid:
        return targets.PidTarget.create(pid)
    return targets.kubernetes_pod_target(kubernetes_pod, container)


@app.command()
def show(
    trace_file: Path = typer.Argument(..., metavar="TRACE", help="A trace written by tracer record or tracer merge."),
    fmt: str = FORMAT_OPTION,
    top: int = typer.Option(None, "--top", help="Show only the N most frequent syscalls per phase (text)."),
) -> None:
    """Summarise a trace: calls per phase and syscall with their EPERM/EACCES/ENOSYS
    results, capability checks with the evidence for each, and lost counters.

    JSON has {"syscalls": {name: calls in the workload's phases}, "phases", "capabilities",
    "lost", "metadata"}. Works offline, unprivileged. Exit status 0, or 2 for a bad trace.
    """
    from tracer.report import format_summary_text, trace_summary
    from tracer.trace import load_trace

    _check_format(fmt)
    summary = trace_summary(load_trace(trace_file))
    if fmt == "json":
        _print_json(summary)
    else:
        typer.echo(format_summary_text(summary, top))


@app.command()
def generate(
    traces: list[Path] = typer.Argument(..., metavar="TRACE...", help="One or more traces (several are combined)."),
    out: Path = typer.Option(..., "--out", "-o", help="Profile directory to write."),
    default_action: str = typer.Option("errno", "--default-action", help="What the profile does with any other syscall: errno (EPERM), kill, or log (allow and log: complain mode)."),
    add_capability: list[str] = typer.Option([], "--add-capability", metavar="CAP", help="Add a capability by hand (e.g. one a call failed without during the recording)."),
    min_runs: int = typer.Option(1, "--min-runs", min=1, metavar="K", help="With merged traces: keep only syscalls that appeared in at least K runs."),
    add_from_log: list[Path] = typer.Option([], "--add-from-log", metavar="FILE", help="Also allow the syscalls a complain-mode run logged: a saved audit.log, dmesg or journal (see tracer denials)."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Write a least-privilege profile directory from traces.

    DIR/seccomp.json is an OCI runtime-spec LinuxSeccomp object (runc accepts it): one
    allow rule with the sorted names of every syscall the workload made in phases startup
    and load; the container runtime's own set-up is left out. Syscalls that only ever
    returned ENOSYS, and clone3 when only clone was used, answer ENOSYS so libraries fall
    back. DIR/capabilities.json lists {"add", "drop": ["ALL"], "evidence"}: a capability is
    added when a check for it was granted in the workload's phases (advisory no-audit checks
    aside); one that calls failed without is reported, not added. DIR/recording.json says
    what the recording says about the process. Exit status 0, or 2 for bad input.
    """
    from tracer.generate import generate as write_profile
    from tracer.trace import load_trace

    _check_format(fmt)
    loaded = [load_trace(path) for path in traces]
    extra = _syscalls_from_logs(add_from_log, loaded[0].arch)
    result = write_profile(loaded, out, default_action, extra_syscalls=extra, add_capabilities=add_capability,
                           min_runs=min_runs)
    caps = result["capabilities"]["add"]
    failed_without = result["capabilities"]["failed_without"]
    if fmt == "json":
        _print_json({"out": str(out), "allowed": result["syscalls"].allowed, "enosys": result["syscalls"].enosys_only,
                     "capabilities": caps, "failed_without": failed_without})
    else:
        typer.echo(f"{out}/seccomp.json: {len(result['syscalls'].allowed)} syscalls allowed, default {result['seccomp']['defaultAction']}")
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


def _syscalls_from_logs(logs: list[Path], arch: str) -> list[str]:
    from tracer.denials import syscalls_from_log

    for log in logs:
        if not log.is_file():
            raise InputError(log, "no such file (a saved audit.log, dmesg or journalctl -k output)")
    return sorted({name for log in logs for name in syscalls_from_log(log, arch=arch)})


@app.command()
def apply(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    bundle: Path = typer.Option(..., "--bundle", help="OCI bundle whose config.json gets the profile."),
) -> None:
    """Write a profile into an OCI bundle's config.json: linux.seccomp, the capability set
    (bounding, effective, permitted = the profile's add list) and noNewPrivileges true,
    keeping everything else. Exit status 0, or 2 for bad input.
    """
    from tracer.verify import apply_profile

    config = apply_profile(profile, bundle)
    caps = config["process"]["capabilities"]["effective"]
    typer.echo(f"{bundle}/config.json: seccomp {config['linux']['seccomp']['defaultAction']}, "
               f"capabilities {', '.join(caps) or 'none'}, noNewPrivileges")


@app.command()
def verify(
    profile: Path = typer.Argument(..., metavar="DIR", help="Profile directory written by tracer generate."),
    bundle: Path = typer.Option(..., "--bundle", help="OCI bundle of the workload (left unchanged)."),
    load: str = typer.Option(None, "--load", metavar="COMMAND", help="Shell command that loads the workload once it is ready; must exit 0. Runs in the container's network namespace when the bundle joins a named one."),
    ready_url: str = typer.Option(None, "--ready-url", metavar="URL", help="Wait until URL answers 2xx before the load (the container's readiness probe)."),
    ready_timeout: float = typer.Option(120, "--ready-timeout", help="Seconds to wait for readiness."),
    stop_timeout: float = typer.Option(30, "--stop-timeout", help="Seconds the container has to exit after its stop signal."),
    probe: bool = typer.Option(True, "--probe/--no-probe", help="Probe dangerous syscalls the profile does not allow (mount, unshare, setns, ptrace, bpf, keyctl, ...) inside the running container."),
    out: Path = typer.Option(None, "--out", help="Also write what the verification run did as a trace."),
    fmt: str = FORMAT_OPTION,
) -> None:
    """Prove a profile: run the container under it, wait for readiness, run the load, stop it
    with its stop signal, and count everything the kernel refused meanwhile (syscalls the
    filter refused, capability checks denied where the call then failed) per phase.

    Passes (exit 0) only when the load succeeds, the container stops cleanly (exit 0) and
    nothing was refused; then it also shows that each dangerous syscall the workload never
    made is refused inside the container. Otherwise lists each failure and exits 1.
    Needs root. Exit 2 for bad input.
    """
    from tracer.verify import verify as run_verify

    _check_format(fmt)
    report = run_verify(profile, bundle, load, ready_url=ready_url, ready_timeout=ready_timeout, stop_timeout=stop_timeout,
                        probe=probe, out=out, log=(lambda m: typer.echo(m, err=True)) if fmt == "text" else (lambda m: None))
    if fmt == "json":
        _print_json(report.to_json())
    else:
        typer.echo(report.to_text())
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FINDINGS)


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
    from tracer.merge import merge_traces, rare_syscalls
    from tracer.trace import load_trace, write_trace

    _check_format(fmt)
    merged = merge_traces([load_trace(path) for path in traces])
    write_trace(merged, out)
    rare = rare_syscalls(merged)
    if fmt == "json":
        _print_json({"out": str(out), "runs": merged.runs["count"], "syscalls": merged.runs["syscalls"], "rare": rare})
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
    from tracer.diff import diff

    _check_format(fmt)
    result = diff(old, new)
    if fmt == "json":
        _print_json(result.to_json())
    else:
        typer.echo(result.to_text())
    raise typer.Exit(EXIT_FINDINGS if result.needs_more else EXIT_OK)


# --- command groups: each module registers its own commands on `app` ---
# (keep one import per line; modules import `app` from here)
from tracer.kube import pss_cli  # noqa: E402,F401
from tracer.kube import k8s_cli  # noqa: E402,F401
from tracer.kube import audit_cli  # noqa: E402,F401
from tracer import loadtest_cli  # noqa: E402,F401
from tracer import denials_cli  # noqa: E402,F401
# --- end command groups ---


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turn InputError into one line and exit 2."""
    try:
        result = app(args=argv, standalone_mode=False)
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        return EXIT_INPUT
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except ClickException as err:  # usage errors surface here in non-standalone mode
        err.show()
        return EXIT_INPUT
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
