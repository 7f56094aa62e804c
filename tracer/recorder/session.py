"""A recording session: start the target, read the kernel's counters every interval into a
trace, switch phases (readiness, load test), checkpoint, stop cleanly."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tracer import __version__
from tracer.arch import native_oci_arch
from tracer.errors import MachineError, TracerError
from tracer.network.observe import SurfaceWatch
from tracer.recorder.kernel import KernelRecorder
from tracer.recorder.progress import Progress
from tracer.targets import Target
from tracer.trace.format import Trace, write_trace

# ---------------------------------------------------------------- the session


@dataclass
class RecordOptions:
    out: Path
    interval: float = 1.0
    duration: float | None = None
    ready_url: str | None = None
    progress: bool = True  # False (--quiet): nothing on stderr while recording
    status_every: float = 5.0  # seconds between status lines where stderr is not a terminal
    capability_source: str = "auto"
    load_command: str | None = None  # run once in phase load; the recording ends when it does
    wait: float | None = None  # pods from creation: how long to wait for the pod (None: until stopped)
    out_is_directory: bool = False  # pods from creation: one trace per container run under `out`
    # Rows the kernel keeps for capability checks; far more than any workload needs. Tests
    # shrink it to prove that a full map is counted and reported, never silent.
    cap_map_entries: int = int(os.environ.get("TRACER_CAP_MAP_ENTRIES", "16384"))
    arg_map_entries: int = int(os.environ.get("TRACER_ARG_MAP_ENTRIES", "8192"))


@dataclass
class RecordResult:
    trace: Trace
    stopped_by: str
    exit_status: int | None
    phase_changes: list[dict] = field(default_factory=list)
    load_status: int | None = None
    load_output: str = ""


class LoadRunner:
    """Runs the load command once, in its own thread, when the recording reaches phase load;
    each line of its output goes to `on_line` as it comes. `stop` ends it with the recording."""

    def __init__(self, command: str | None, netns: str | None, on_line=None):
        self.command, self.netns, self.on_line = command, netns, on_line
        self.thread: threading.Thread | None = None
        self.process: subprocess.Popen | None = None
        self.status: int | None = None
        self.output = ""

    def start_once(self) -> None:
        if self.command and self.thread is None:
            self.thread = threading.Thread(target=self._run, name="load", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        self.status, self.output = run_load_command(self.command, self.netns, on_line=self.on_line,
                                                    on_start=self._started)

    def _started(self, process: subprocess.Popen) -> None:
        self.process = process

    def stop(self) -> None:
        """Kill a load command still running (the recording ended first) and wait for its status."""
        if self.thread is None or not self.thread.is_alive():
            return
        if self.process is not None:
            kill_group(self.process)
        self.thread.join(timeout=5)

    @property
    def finished(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


class PhaseSwitch:
    """Moves the recording from startup to load: on the ready URL's first 2xx, or SIGUSR1."""

    def __init__(self, recorder: KernelRecorder, started: float):
        self.recorder, self.started, self.changes = recorder, started, []
        self.phase = "startup"
        self._lock = threading.Lock()

    def to_load(self, reason: str) -> None:
        with self._lock:
            if self.phase == "load":
                return
            self.recorder.set_phase("load")
            self.phase = "load"
            self.changes.append({"phase": "load", "t": round(time.monotonic() - self.started, 3), "reason": reason})

    def watch_url(self, url: str, stop: threading.Event, netns: str | None = None) -> threading.Thread:
        def poll() -> None:
            while not stop.is_set() and self.phase != "load":
                if url_ready(url, netns):
                    self.to_load(f"{url} answered 2xx")
                    return
                stop.wait(0.1)

        thread = threading.Thread(target=poll, name="ready-url", daemon=True)
        thread.start()
        return thread


def url_ready(url: str, netns: str | None = None) -> bool:
    """Whether URL answers 2xx, asked from inside the named network namespace if given."""
    if netns:
        from tracer.network.netns import call_in  # noqa: PLC0415

        return call_in(netns, url_ready, url)
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_load_command(command: str, netns: str | None = None, timeout: float = 600, on_line=None,
                     on_start=None) -> tuple[int, str]:
    """Run a load command (shell) to completion, inside the named netns if given: (exit
    status, its output). Each line of output (stdout and stderr, in order) also goes to
    `on_line`, prefixed `load | `, as soon as the command writes it. The command runs in
    its own process group, so that a timeout ends everything it started."""
    argv = ["/bin/sh", "-c", command]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # a Python load tool's lines come as written
    timed_out = threading.Event()
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env=env, process_group=0) as process:
        if on_start is not None:
            on_start(process)
        timer = threading.Timer(timeout, lambda: (timed_out.set(), kill_group(process)))
        timer.start()
        try:
            for line in process.stdout:
                lines.append(line)
                if on_line is not None:
                    on_line(f"load | {line.rstrip()}")
            status = process.wait()
        finally:
            timer.cancel()
    if timed_out.is_set():
        return 124, "".join(lines) + f"load command timed out after {timeout}s"
    return status, "".join(lines)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group PROCESS leads (a shell and whatever it started)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Signals:
    """SIGINT, SIGTERM and SIGHUP ask the recording to stop; SIGUSR1 asks for phase load.

    Installed before anything is made or started (a cgroup, a container, the BPF program):
    from then on no signal finds its default action, which would end the tracer without a
    trace and leave the workload to the watchdog."""

    STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.load_requested = threading.Event()
        self._previous: dict[int, object] = {}

    @classmethod
    def install(cls) -> "Signals":
        signals = cls()
        for signum in (*cls.STOP, signal.SIGUSR1):
            signals._previous[signum] = signal.signal(signum, signals._handle)
        return signals

    def _handle(self, signum, _frame) -> None:
        if signum == signal.SIGUSR1:
            self.load_requested.set()
        else:
            self.stopped_by = self.stopped_by or signal.Signals(signum).name
            self.stop.set()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class StoppedBeforeRecording(TracerError):
    """A stop signal came before the BPF program was loaded: nothing recorded (exit 1)."""

    exit_code = 1


class CheckpointFailures:
    """Checkpoints that could not be written: reported, counted in the trace, retried at the
    next interval. The recording and the workload go on."""

    def __init__(self, trace: Trace, interval: float):
        self.trace, self.interval, self.count = trace, interval, 0
        trace.metadata["checkpoint_failures"] = 0

    def attempt(self, *args, **kwargs) -> None:
        try:
            _checkpoint(*args, **kwargs)
        except (TracerError, OSError) as err:
            self.count += 1
            self.trace.metadata["checkpoint_failures"] = self.count
            sys.stderr.write(f"warning: checkpoint {self.count} failed, recording goes on (retry in {self.interval:g} s): {err}\n")


def record(target: Target, options: RecordOptions, signals: Signals | None = None) -> RecordResult:
    """Attach, start the target, checkpoint every interval, stop on the first of: target
    finished, duration elapsed, SIGINT/SIGTERM/SIGHUP. Returns with the final trace written.

    `signals`: handlers the caller installed before making the target (installed here
    otherwise). The target is closed on every way out: what the recording started stops."""
    own_signals = signals is None
    signals = signals or Signals.install()
    try:
        try:
            if signals.stop.is_set():
                raise StoppedBeforeRecording(None, f"stopped by {signals.stopped_by} before the recording began; "
                                                   "nothing was started, no trace written")
            recorder = load_recorder(target, options)
        except BaseException:
            target.close()
            raise
        return _record(target, options, signals, recorder)  # closes the target itself
    finally:
        if own_signals:
            signals.restore()


def load_recorder(target: Target, options: RecordOptions) -> KernelRecorder:
    return load_bpf(target.cgroup_id, gated=target.gated, gate_from=target.gate_from, capability_source=options.capability_source,
                    cap_map_entries=options.cap_map_entries, arg_map_entries=options.arg_map_entries)


def load_bpf(cgroup_id: int, **options) -> KernelRecorder:
    """The BPF program for one cgroup, or MachineError with bcc's reason on one line."""
    with _bcc_output_captured() as captured_text:
        try:
            return KernelRecorder(cgroup_id, **options)
        except Exception as err:  # noqa: BLE001 (bcc raises plain Exception for every failure)
            reasons = [line.strip() for line in captured_text().splitlines() if line.strip()]
            raise MachineError("BPF", f"the recorder could not be loaded: {reasons[-1] if reasons else err}") from None


@contextlib.contextmanager
def _bcc_output_captured():
    """Collect what libbcc and clang print while the program loads (several lines per failure,
    some on stdout, which belongs to a recorded command); yields a function that returns it.
    Shown on stderr when the load succeeds."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as captured:

        def text() -> str:
            captured.seek(0)
            return captured.read().decode(errors="replace")

        for fd in saved:
            os.dup2(captured.fileno(), fd)
        try:
            yield text
        finally:
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
        sys.stderr.write(text())  # reached only when the load succeeded


def _record(target: Target, options: RecordOptions, signals: Signals, recorder: KernelRecorder) -> RecordResult:
    started_at, started = _now(), time.monotonic()
    switch = PhaseSwitch(recorder, started)
    stopped_by = "target finished"
    metadata = _metadata(target, recorder, options, started_at)
    trace = Trace(metadata, [], {})
    checkpoints = CheckpointFailures(trace, options.interval)
    progress = Progress.create(options.progress, metadata["arch"], options.duration, options.status_every)
    load = LoadRunner(options.load_command, target.netns, on_line=progress.note)
    surface = SurfaceWatch(target.netns, target.workload_pid)
    try:
        if not signals.stop.is_set():
            target.start()
        if options.ready_url:
            switch.watch_url(options.ready_url, signals.stop, target.netns)
        next_checkpoint = started + options.interval
        while not signals.stop.is_set():
            if target.finished():
                break
            if options.duration is not None and time.monotonic() - started >= options.duration:
                stopped_by = "duration"
                break
            if signals.load_requested.is_set():
                switch.to_load("SIGUSR1")
            if switch.phase == "load":
                surface.observe_once("ready")
                load.start_once()
            if load.finished:
                stopped_by = f"load finished (exit {load.status})"
                break
            if time.monotonic() >= next_checkpoint:
                checkpoints.attempt(recorder, trace, switch, started, options.out, progress)
                next_checkpoint += options.interval
            signals.stop.wait(min(0.05, max(0.0, next_checkpoint - time.monotonic())))
        stopped_by = signals.stopped_by or stopped_by
        if stopped_by != "target finished":
            surface.observe_once("end")
            target.stop()
        checkpoints.attempt(recorder, trace, switch, started, options.out, progress, final=True)
    finally:
        load.stop()
        progress.done()
        recorder.close()
        target.close()
    trace.metadata.update(complete=True, stopped_by=stopped_by, workload_exit_status=target.exit_status)
    trace.network = surface.to_json()
    if surface.not_observed:
        trace.metadata["network_not_observed"] = surface.not_observed
    if options.load_command:
        trace.metadata["load"] = {"command": options.load_command, "exit_status": load.status}
    _write_final_trace(trace, options.out)
    return RecordResult(trace, stopped_by, target.exit_status, switch.changes, load.status, load.output)


def _write_final_trace(trace: Trace, out: Path) -> None:
    try:
        write_trace(trace, out)
    except TracerError as err:
        kept = "the last checkpoint written is kept" if out.exists() else "no checkpoint was written"
        raise MachineError(out, f"the final trace could not be written ({err.problem}); {kept}") from None


def _checkpoint(recorder, trace, switch, started, out, progress, final=False) -> None:
    """Read the counters, keep them (the totals, one point of the bounded series) and rewrite
    the trace: the same work at every checkpoint however long the recording has run."""
    t = time.monotonic() - started
    snapshot, lost = recorder.read(t)
    trace.keep(snapshot)
    trace.lost = lost
    trace.arguments = recorder.arguments()
    if final:
        trace.lost["unattributed_capability_checks"] = recorder.unattributed_capability_checks()
    trace.metadata.update(ended_at=_now(), phase_changes=switch.changes, workload_started=recorder.armed)
    write_trace(trace, out)
    progress.update(t, snapshot, switch.phase, final)


def _metadata(target: Target, recorder: KernelRecorder, options: RecordOptions, started_at: str) -> dict:
    uname = os.uname()
    return {
        "tool": "seccomp-tracer",
        "tool_version": __version__,
        "kernel": uname.release,
        "machine": uname.machine,
        "arch": native_oci_arch(),
        "hostname": uname.nodename,
        "python": platform.python_version(),
        "target": target.metadata(),
        "capability_source": recorder.capability_source,
        "gate": _gate_description(target),
        "interval_s": options.interval,
        "ready_url": options.ready_url,
        "started_at": started_at,
        "ended_at": started_at,
        "complete": False,
        **({"startup_missed": True} if target.startup_missed else {}),
    }


def _gate_description(target: Target) -> str:
    if not target.gated:
        return "none (attached to a running target)"
    if target.gate_from == "handover":
        return "runtime hand-over (attached after the filter install; opens at the first exec)"
    return "runtime hand-over (seccomp filter install or first exec)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
