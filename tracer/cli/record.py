"""`tracer record` and `tracer show`: record a target into a trace, summarise a trace."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from tracer.cli.app import (
    EXIT_FINDINGS,
    EXIT_OK,
    FORMAT_OPTION,
    OutputFormat,
    app,
    deprecated_alias,
    input_path,
    preferred,
    print_json,
)
from tracer.errors import InputError


class CapabilitySource(str, Enum):
    auto = "auto"
    tracepoint = "tracepoint"
    kprobe = "kprobe"


@app.command(context_settings={"allow_interspersed_args": False})
def record(
    out_text: str = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="TRACE",
        help="Trace file to write (checkpointed atomically every interval); for a pod recorded from creation DIR/ (an existing directory, or a trailing slash) for one trace per container run.",
    ),
    command: list[str] = typer.Argument(
        None,
        metavar="[-- COMMAND ARGS...]",
        help="Run COMMAND in a new cgroup and record it; its output passes through, its exit status is printed and kept in the trace (workload_exit_status).",
    ),
    runc: str = typer.Option(
        None,
        "--runc",
        metavar="ID",
        help="A runc container made with `runc create` and not yet started: attach, start it, stop when its init exits.",
    ),
    runc_bundle: str = typer.Option(
        None,
        "--runc-bundle",
        metavar="DIR",
        help="Create a container from this OCI bundle and record it from before `runc create`; runc's own set-up is kept apart (phase runtime).",
    ),
    runc_id: str = typer.Option(
        None,
        "--runc-id",
        metavar="ID",
        help="Container id for --runc-bundle (default tracer-PID-RANDOM); an id that exists is refused (exit 2).",
    ),
    runc_root: str = typer.Option(None, "--runc-root", metavar="DIR", help="runc's state directory (runc --root)."),
    containerd: str = typer.Option(
        None,
        "--containerd",
        metavar="ID",
        help="A containerd task: created and not started, gated at runc's hand-over (whoever created it starts it); running, counted from attach (startup_missed).",
    ),
    containerd_namespace: str = typer.Option(
        "default",
        "--containerd-namespace",
        metavar="NS",
        help="containerd namespace of --containerd (k8s.io on Kubernetes nodes).",
    ),
    old_namespace: str = deprecated_alias("--namespace", "--containerd-namespace", "NS"),
    containerd_state: Path = typer.Option(
        Path("/run/containerd"),
        "--containerd-state",
        metavar="DIR",
        help="containerd's state directory (its config's `state`).",
    ),
    cgroup: str = typer.Option(
        None, "--cgroup", metavar="PATH", help="A cgroup v2, absolute or relative to the v2 mount."
    ),
    pid: int = typer.Option(
        None, "--pid", metavar="PID", help="The cgroup of this process (every process in it counts)."
    ),
    kubernetes_pod: str = typer.Option(
        None,
        "--kubernetes-pod",
        metavar="NS/POD",
        help="A pod on this node, through the CRI socket. Not there yet (or not started): load first, wait for it, record every container from its first syscall. Already running: attach to its running container, counted from then on (start-up behind it).",
    ),
    kubernetes_selector: str = typer.Option(
        None,
        "--kubernetes-selector",
        metavar="NS/LABEL=VALUE",
        help="The next new pod of namespace NS with that label on this node, recorded from its first syscall.",
    ),
    container: str = typer.Option(
        None, "--container", metavar="NAME", help="Container name within --kubernetes-pod / --kubernetes-selector."
    ),
    cri_endpoint: str = typer.Option(
        None,
        "--cri-endpoint",
        metavar="URL",
        help="The node's CRI socket (default $CONTAINER_RUNTIME_ENDPOINT, else containerd's, CRI-O's, cri-dockerd's).",
    ),
    duration: float = typer.Option(
        None,
        "--duration",
        min=0.1,
        metavar="S",
        help="Stop after S seconds (a pod recorded from creation: S seconds after it appeared).",
    ),
    wait: float = typer.Option(
        None,
        "--wait",
        min=0.1,
        metavar="S",
        help="A pod recorded from creation: give up when it has not appeared within S seconds (exit 1; default: wait until stopped).",
    ),
    interval: float = typer.Option(
        1.0, "--interval", min=0.1, metavar="S", help="Seconds between checkpoints of the trace file."
    ),
    ready_url: str = typer.Option(
        None,
        "--ready-url",
        metavar="URL",
        help="Switch from phase startup to load when URL first answers 2xx (SIGUSR1 switches by hand). Asked inside the container's network namespace when it joins a named one.",
    ),
    load: str = typer.Option(
        None,
        "--load",
        metavar="COMMAND",
        help="Shell command to run once phase load begins (e.g. scripts/loadtest.py); its output is shown as it comes, prefixed `load |`; when it ends the target is stopped and the recording ends.",
    ),
    container_log: str = typer.Option(
        None,
        "--container-log",
        metavar="FILE",
        help="With --runc-bundle: append the container's output to FILE instead of passing it through.",
    ),
    capability_source: CapabilitySource = typer.Option(
        CapabilitySource.auto,
        "--capability-source",
        help="tracepoint: capability:cap_capable; kprobe: cap_capable (drops no-audit checks); auto: the tracepoint where the kernel has it.",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress on stderr (the final summary and errors still print)."
    ),
    status_every: float = typer.Option(
        5.0,
        "--status-every",
        min=0.5,
        metavar="S",
        help="Where stderr is not a terminal (a log): a status line at most every S seconds.",
    ),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Record every syscall and capability check of one container (or cgroup) with eBPF.

    Counts are aggregated in the kernel per phase (runtime set-up, startup, load) and
    written to TRACE every --interval seconds; Ctrl-C, SIGTERM or SIGHUP stops cleanly with
    everything recorded so far. Counters the kernel could not record are reported. What the
    recording started (the command and its children, a container) is stopped with it, also
    when the tracer is killed. Needs root.

    Progress goes to stderr: on a terminal one live status line; elsewhere (a pod's
    log) a plain line at most every --status-every seconds with the elapsed time,
    calls, distinct syscalls, the new ones by name, the time left with --duration and
    how long no new syscall has appeared. --quiet silences it.

    Exit status: the recording's, not the workload's (also with -- COMMAND, whose
    status is printed and kept in the trace as workload_exit_status): 0 complete, 1
    counters lost, the workload's start missed or the load command failed, 2 usage or
    input error, 3 a problem of the machine (BPF, runc, cgroups, the trace could not be
    written).

    Examples:

    \b
      tracer record --out ls.trace.json -- ls -l /
      tracer record --duration 60 --out app.trace.json --pid 4242
      tracer record --runc-bundle ./bundle --ready-url http://127.0.0.1:8000/v1/health/ready \\
          --load 'scripts/loadtest.py --requests 400' --out nim.trace.json
      tracer record --kubernetes-pod nim/nim-llm-0 --duration 900 --out nim.trace.json
      tracer record --kubernetes-selector nim/app=nim-llm --out traces/   # then: kubectl rollout restart

    Pods (--kubernetes-pod for a pod not running yet, --kubernetes-selector): --out FILE
    records one container run (the first to start, or --container's); --out DIR/ records
    every run, as DIR/NAME.trace.json and DIR/NAME.restart-N.trace.json. The recorder
    waits for the pod (as long as --wait allows), then records until the pod stops (with
    --out FILE: until its container exits), --duration after the pod appeared, or a stop
    signal.
    """
    from tracer.files import check_output_file
    from tracer.recorder.loop import RecordOptions, Signals
    from tracer.recorder.session import record as run_recording
    from tracer.targets import TargetOptions

    out = Path(out_text)
    chosen = TargetOptions(
        command=command,
        runc=runc,
        runc_bundle=runc_bundle,
        runc_id=runc_id,
        runc_root=runc_root,
        container_log=container_log,
        containerd=containerd,
        containerd_namespace=preferred(containerd_namespace, old_namespace),
        containerd_state=containerd_state,
        cgroup=cgroup,
        pid=pid,
        kubernetes_pod=kubernetes_pod,
        kubernetes_selector=kubernetes_selector,
        container=container,
        cri_endpoint=cri_endpoint,
    )
    options = RecordOptions(
        out,
        interval,
        duration,
        ready_url,
        progress=not quiet,
        status_every=status_every,
        capability_source=capability_source.value,
        load_command=load,
        wait=wait,
        out_is_directory=out_text.endswith("/") or out.is_dir(),
    )
    signals = Signals.install()  # before anything is made: a signal from now on stops cleanly
    try:
        pod_selector = _pod_from_creation(chosen)
        if pod_selector is not None:
            _record_pod_from_creation(pod_selector, chosen, options, signals, fmt, quiet)
        if wait is not None and not kubernetes_pod:
            raise InputError(
                None, "--wait is for a pod recorded from creation (--kubernetes-pod, --kubernetes-selector)"
            )
        for output in (out, container_log):
            if output:
                check_output_file(output)
        target = chosen.target()
        result = run_recording(target, options, signals)
    finally:
        signals.restore()
    trace = result.trace
    lost = {k: v for k, v in trace.lost.items() if v}
    calls = int(trace.calls_by_nr().sum())
    distinct = int((trace.calls_by_nr() > 0).sum())
    if fmt is OutputFormat.json:
        # A recorded command owns stdout; the summary then goes to stderr.
        print_json(
            {
                "out": str(out),
                "stopped_by": result.stopped_by,
                "exit_status": result.exit_status,
                "calls": calls,
                "syscalls": distinct,
                "lost": trace.lost,
                "phase_changes": result.phase_changes,
                "load_status": result.load_status,
            },
            stream=sys.stderr if target.kind == "command" else sys.stdout,
        )
    else:
        typer.echo(
            f"recorded {calls:,} calls of {distinct} syscalls from {target.kind} {target.name} "
            f"({result.stopped_by}) -> {out}",
            err=True,
        )
        typer.echo("lost counters: " + (", ".join(f"{k} {v}" for k, v in lost.items()) if lost else "none"), err=True)
    if load and result.load_status != 0:
        report_failed_load(result.load_status, result.load_output, quiet)
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
    if trace.metadata.get("startup_missed"):
        start_missed = True
        typer.echo(
            "start-up missed: the target was already running when the recorder attached "
            "(startup_missed: true; generate refuses it without --allow-incomplete)",
            err=True,
        )
    lost = any(trace.lost.values())
    return EXIT_FINDINGS if lost or start_missed else EXIT_OK


def report_failed_load(status: int | None, output: str, quiet: bool) -> None:
    if quiet:  # its output was not shown as it came: show how it ended
        typer.echo("\n".join(f"load | {line}" for line in output.splitlines()[-20:]), err=True)
    typer.echo(f"error: the load command {load_outcome(status)}", err=True)


def load_outcome(status: int | None) -> str:
    if status is None:
        return "never ran (phase load never began: see --ready-url)"
    if status < 0:
        return f"was killed by signal {-status} (the recording ended first)"
    return f"exited {status}"


def _pod_from_creation(chosen):
    """The pod to record from creation, or None for every other target (and a pod already running)."""
    from tracer.recorder.pod import PodSelector, pod_is_running

    if chosen.kubernetes_selector:
        if chosen.kubernetes_pod:
            raise InputError(None, "choose one of --kubernetes-pod and --kubernetes-selector")
        return PodSelector.labelled(chosen.kubernetes_selector)
    if not chosen.kubernetes_pod or chosen.kubernetes_pod.endswith("/*"):
        return None
    selector = PodSelector.named(chosen.kubernetes_pod)
    return None if pod_is_running(selector, chosen.container, chosen.cri_endpoint) else selector


def _record_pod_from_creation(selector, chosen, options, signals, fmt, quiet) -> None:
    from tracer.files import check_output_file
    from tracer.recorder.pod import record_pod

    # Nothing is made until a container runs: check now that its trace could be written.
    check_output_file(options.out / "CONTAINER.trace.json" if options.out_is_directory else options.out)
    try:
        result = record_pod(selector, chosen.container, options, signals, chosen.cri_endpoint)
    finally:
        signals.restore()
    runs = [
        {
            "container": run.name,
            "restart_count": run.attempt,
            "out": str(run.out),
            "calls": int(run.trace.calls_by_nr().sum()),
            "exit_status": run.exit_code,
            "startup_missed": bool(run.trace.metadata.get("startup_missed")),
            "workload_started": run.trace.metadata.get("workload_started"),
        }
        for run in result.runs
    ]
    if fmt is OutputFormat.json:
        print_json(
            {"pod": result.pod, "stopped_by": result.stopped_by, "runs": runs, "not_recorded": result.not_recorded}
        )
    else:
        for run in runs:
            typer.echo(
                f"recorded {run['calls']:,} calls from {result.selector} container {run['container']} "
                f"(restart {run['restart_count']}, {result.stopped_by}) -> {run['out']}",
                err=True,
            )
    problems = []
    if result.pod is None:
        problems.append(f"no pod {selector.describe()} appeared on this node ({result.stopped_by}); nothing recorded")
    elif not runs:
        problems.append(f"pod {selector.describe()} started no container that was recorded ({result.stopped_by})")
    problems += [
        f"start-up missed: container {run['container']} had started before the recorder armed (startup_missed: true)"
        for run in runs
        if run["startup_missed"]
    ]
    if result.not_recorded:
        problems.append(
            f"not recorded (name one with --container, or give --out a directory): {', '.join(result.not_recorded)}"
        )
    lost = {k for run in result.runs for k, v in run.trace.lost.items() if v}
    if lost:
        problems.append("lost counters: " + ", ".join(sorted(lost)))
    for problem in problems:
        typer.echo(problem, err=True)
    load_failed = bool(options.load_command) and result.load_status != 0
    if load_failed:
        report_failed_load(result.load_status, result.load_output, quiet)
    not_observed = {run.trace.metadata.get("network_not_observed") for run in result.runs} - {None}
    for reason in sorted(not_observed):
        typer.echo(f"note: the pod's network was not observed: {reason}", err=True)
    raise typer.Exit(EXIT_FINDINGS if problems or load_failed else EXIT_OK)


@app.command()
def show(
    trace_file: Path = typer.Argument(
        ..., metavar="TRACE", help="A trace written by tracer record or tracer merge; - reads standard input."
    ),
    fmt: OutputFormat = FORMAT_OPTION,
    top: int = typer.Option(
        None, "--top", min=1, metavar="N", help="Show only the N most frequent syscalls per phase (text)."
    ),
) -> None:
    """Summarise a trace: calls per phase and syscall, capability checks, lost counters.

    Each syscall is shown with its EPERM/EACCES/ENOSYS results, each capability check
    with the evidence for it. JSON has {"syscalls": {name: calls in the workload's
    phases}, "phases", "capabilities", "lost", "metadata"}. Works offline, unprivileged.

    Exit status: 0 ok, 2 a missing or bad trace, 3 a problem of the machine.

    Examples:

    \b
      tracer show nim.trace.json --top 15
      tracer show -f json nim.trace.json | jq '.syscalls | keys'
      ssh node cat /var/lib/seccomp-tracer/traces/n1.trace.json | tracer show -
    """
    from tracer.trace.format import load_trace
    from tracer.trace.summary import format_summary_text, trace_summary

    summary = trace_summary(load_trace(input_path(trace_file)))
    if fmt is OutputFormat.json:
        print_json(summary)
    else:
        typer.echo(format_summary_text(summary, top))
