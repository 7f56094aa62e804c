"""`tracer record` and `tracer show`: record a target into a trace, summarise a trace."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tracer.cli.app import EXIT_FINDINGS, EXIT_OK, FORMAT_OPTION, app, check_format, print_json
from tracer.errors import InputError


@app.command(context_settings={"allow_interspersed_args": False})
def record(
    out: Path = typer.Option(..., "--out", "-o", help="Trace file to write (checkpointed atomically every interval)."),
    command: list[str] = typer.Argument(None, metavar="[-- COMMAND ARGS...]",
                                        help="Run COMMAND in a new cgroup and record it; its output passes through, its exit status is printed and kept in the trace (workload_exit_status)."),
    runc: str = typer.Option(None, "--runc", metavar="ID", help="A runc container made with `runc create` and not yet started: attach, start it, stop when its init exits."),
    runc_bundle: str = typer.Option(None, "--runc-bundle", metavar="BUNDLE", help="Create a container from this OCI bundle and record it from before `runc create`; runc's own set-up is kept apart (phase runtime)."),
    runc_id: str = typer.Option(None, "--runc-id", metavar="ID", help="Container id for --runc-bundle (default tracer-PID-RANDOM); an id that exists is refused (exit 2)."),
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
    written to TRACE every --interval seconds; Ctrl-C, SIGTERM or SIGHUP stops cleanly with
    everything recorded so far. Counters the kernel could not record are reported. What the
    recording started (the command and its children, a container) is stopped with it, also
    when the tracer is killed. Needs root.

    Exit status is the recording's, not the workload's (also with -- COMMAND, whose
    status is printed and kept in the trace as workload_exit_status): 0 complete, 1
    counters lost, the workload's start missed or the load command failed, 2 usage or
    input error, 3 the machine failed (BPF, runc, cgroups, the trace could not be written).
    """
    from tracer.files import check_output_file
    from tracer.recorder.session import RecordOptions, Signals
    from tracer.recorder.session import record as run_recording

    signals = Signals.install()  # before anything is made: a signal from now on stops cleanly
    try:
        check_format(fmt)
        for output in (out, container_log):
            if output:
                check_output_file(output)
        target = _choose_target(command, runc, runc_bundle, runc_id, runc_root, containerd, namespace, cgroup, pid,
                                kubernetes_pod, container, container_log, containerd_state)
        result = run_recording(target, RecordOptions(out, interval, duration, ready_url, progress=fmt == "text",
                                                     capability_source=capability_source, load_command=load), signals)
    finally:
        signals.restore()
    trace = result.trace
    lost = {k: v for k, v in trace.lost.items() if v}
    calls = int(trace.calls_by_nr().sum())
    distinct = int((trace.calls_by_nr() > 0).sum())
    if fmt == "json":
        # A recorded command owns stdout; the summary then goes to stderr.
        print_json({"out": str(out), "stopped_by": result.stopped_by, "exit_status": result.exit_status,
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
    raise typer.Exit(_recording_status(target, trace, result))


def _recording_status(target, trace, result) -> int:
    """0 complete; 1 when counters were lost or the workload's start was missed."""
    if result.exit_status is not None:
        typer.echo(f"workload exit status: {result.exit_status}", err=True)
    start_missed = target.gated and not trace.metadata.get("workload_started")
    if start_missed:
        typer.echo(f"start-up missed: the workload never started under the recorder ({result.stopped_by})", err=True)
    lost = any(trace.lost.values())
    return EXIT_FINDINGS if lost or start_missed else EXIT_OK


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
    from tracer.summary import format_summary_text, trace_summary
    from tracer.trace import load_trace

    check_format(fmt)
    summary = trace_summary(load_trace(trace_file))
    if fmt == "json":
        print_json(summary)
    else:
        typer.echo(format_summary_text(summary, top))


