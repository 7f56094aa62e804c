"""A recording session: start the target, read the kernel's counters every interval into a
trace, switch phases (readiness, load test), checkpoint, stop cleanly."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tracer import __version__
from tracer.recorder.kernel import KernelRecorder
from tracer.syscalls import native_oci_arch
from tracer.targets import Target
from tracer.trace import PROFILE_PHASES, Snapshot, Trace, write_trace

# ---------------------------------------------------------------- the session


@dataclass
class RecordOptions:
    out: Path
    interval: float = 1.0
    duration: float | None = None
    ready_url: str | None = None
    progress: bool = True
    capability_source: str = "auto"
    load_command: str | None = None  # run once in phase load; the recording ends when it does
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
    """Runs the load command once, in its own thread, when the recording reaches phase load."""

    def __init__(self, command: str | None, netns: str | None):
        self.command, self.netns = command, netns
        self.thread: threading.Thread | None = None
        self.status: int | None = None
        self.output = ""

    def start_once(self) -> None:
        if self.command and self.thread is None:
            self.thread = threading.Thread(target=self._run, name="load", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        self.status, self.output = run_load_command(self.command, self.netns)

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
        from tracer.netns import call_in  # noqa: PLC0415

        return call_in(netns, url_ready, url)
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_load_command(command: str, netns: str | None = None, timeout: float = 600) -> tuple[int, str]:
    """Run a load command (shell) to completion, inside the named netns if given."""
    argv = ["/bin/sh", "-c", command]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"load command timed out after {timeout}s"
    return done.returncode, done.stdout + done.stderr


class Progress:
    """One live line on a terminal: elapsed, calls, distinct syscalls, new distinct lately."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.last_distinct = 0

    def update(self, t: float, snapshot: Snapshot, phase: str) -> None:
        if not self.enabled:
            return
        calls = snapshot.calls_in(PROFILE_PHASES)
        distinct = int(np.count_nonzero(calls))
        new = distinct - self.last_distinct
        self.last_distinct = distinct
        sys.stderr.write(f"\r\x1b[K{t:7.1f}s  {phase:<7}  calls {int(calls.sum()):>12,}  syscalls {distinct:>3}  new {new:+d}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def record(target: Target, options: RecordOptions) -> RecordResult:
    """Attach, start the target, checkpoint every interval, stop on the first of: target
    finished, duration elapsed, SIGINT/SIGTERM. Returns with the final trace written."""
    recorder = KernelRecorder(target.cgroup_id, gated=target.gated, capability_source=options.capability_source,
                              cap_map_entries=options.cap_map_entries, arg_map_entries=options.arg_map_entries)
    started_at, started = _now(), time.monotonic()
    switch = PhaseSwitch(recorder, started)
    stop, stopped_by = threading.Event(), ["target finished"]
    metadata = _metadata(target, recorder, options, started_at)
    trace = Trace(metadata, [], {})

    def on_signal(signum, _frame) -> None:
        if signum == signal.SIGUSR1:
            switch.to_load("SIGUSR1")
        else:
            stopped_by[0] = signal.Signals(signum).name
            stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    progress = Progress(options.progress)
    load = LoadRunner(options.load_command, target.netns)
    try:
        target.start()
        if options.ready_url:
            switch.watch_url(options.ready_url, stop, target.netns)
        next_checkpoint = started + options.interval
        while not stop.is_set():
            if target.finished():
                break
            if options.duration is not None and time.monotonic() - started >= options.duration:
                stopped_by[0] = "duration"
                break
            if switch.phase == "load":
                load.start_once()
            if load.finished:
                stopped_by[0] = f"load finished (exit {load.status})"
                break
            if time.monotonic() >= next_checkpoint:
                _checkpoint(recorder, trace, switch, started, options.out, progress)
                next_checkpoint += options.interval
            stop.wait(min(0.05, max(0.0, next_checkpoint - time.monotonic())))
        if stopped_by[0] != "target finished":
            target.stop()
        _checkpoint(recorder, trace, switch, started, options.out, progress, final=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        progress.done()
        recorder.close()
        target.close()
    trace.metadata.update(complete=True, stopped_by=stopped_by[0], exit_status=target.exit_status)
    if options.load_command:
        trace.metadata["load"] = {"command": options.load_command, "exit_status": load.status}
    write_trace(trace, options.out)
    return RecordResult(trace, stopped_by[0], target.exit_status, switch.changes, load.status, load.output)


def _checkpoint(recorder, trace, switch, started, out, progress, final=False) -> None:
    t = time.monotonic() - started
    snapshot, lost = recorder.read(t)
    trace.snapshots.append(snapshot)
    trace.lost = lost
    trace.arguments = recorder.arguments()
    if final:
        trace.lost["unattributed_capability_checks"] = recorder.unattributed_capability_checks()
    trace.metadata.update(ended_at=_now(), phase_changes=switch.changes, workload_started=recorder.armed)
    write_trace(trace, out)
    progress.update(t, snapshot, switch.phase)


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
        "gate": "runtime hand-over (seccomp filter install or first exec)" if target.gated else "none (attached to a running target)",
        "interval_s": options.interval,
        "ready_url": options.ready_url,
        "started_at": started_at,
        "ended_at": started_at,
        "complete": False,
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
