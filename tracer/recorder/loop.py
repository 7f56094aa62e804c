"""The recording loop, the same for every recorder: the clock (--wait, --duration), the stop
signals, the phase switch (--ready-url, SIGUSR1), the load command (--load), the checkpoints
and what a failed one does. What is recorded, and how, lies behind `Recorder`: one cgroup
(session.py), a pod from its creation (pod.py), or the tests' fake.

One recording, in order: arm (asked again every POLL_S until it can, or --wait runs out);
then a turn every TURN_S at most until the target is gone, --duration has passed, the load
command has ended or a stop signal came, with a checkpoint every --interval; then the
recorder finishes (stops what the recording started), a last checkpoint, close (on every way
out), and the complete traces are written. A checkpoint that cannot be written is reported,
counted in its trace (`checkpoint_failures`) and retried at the next interval; a final trace
that cannot be written is a MachineError. Any other error (a CRI runtime that stops
answering) ends the recording with it, after close.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tracer.errors import MachineError, TracerError
from tracer.recorder.load import LoadRunner, url_ready
from tracer.trace.format import Trace, write_trace

POLL_S = 0.01  # between attempts to arm: well under CRI's sandbox-to-start time
TURN_S = 0.05  # the longest wait between two looks at the target


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


class Recorder(Protocol):
    """What the loop needs from a recorder. Its traces are handed back by path; the loop
    writes them."""

    netns: str | None  # the named network namespace the ready URL and the load command live in

    def arm(self) -> bool:
        """Begin recording the target (start it where the recording owns it); False while
        there is nothing to arm yet (a pod that has not appeared): asked again."""

    def set_phase(self, phase: str) -> None:
        """Count in `phase` from now on; called from any thread."""

    def on_load(self) -> None:
        """Phase load has begun (called once, from the loop's thread)."""

    def target_gone(self) -> str | None:
        """Why the target is over ("target finished", "pod stopped"), None while it goes on."""

    def checkpoint(self, t: float, final: bool = False) -> dict[Path, Trace]:
        """Read the kernel's counters, `t` seconds into the recording, into the traces."""

    def finish(self, target_ended: bool) -> None:
        """The recording ends: stop what it started unless the target ended by itself."""

    def close(self) -> None:
        """Release the kernel's program and the target, on every way out."""

    def complete(self) -> dict[Path, Trace]:
        """The final traces, after close (a workload's exit status is known by then)."""

    def note(self, line: str) -> None:
        """Show a line (the load command's output) while recording."""


@dataclass
class Recording:
    """How a recording ended: `armed` False when the target never came (stopped, --wait)."""

    armed: bool
    stopped_by: str
    traces: dict[Path, Trace] = field(default_factory=dict)
    phase_changes: list[dict] = field(default_factory=list)
    load_status: int | None = None
    load_output: str = ""


class StoppedBeforeRecording(TracerError):
    """A stop signal came before the BPF program was loaded: nothing recorded (exit 1)."""

    exit_code = 1


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

    def refuse_if_stopped(self) -> None:
        """Before the program is loaded: a stop signal so far means nothing is recorded."""
        if self.stop.is_set():
            raise StoppedBeforeRecording(
                None, f"stopped by {self.stopped_by} before the recording began; nothing was started, no trace written"
            )

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class PhaseSwitch:
    """Moves the recording from startup to load: on the ready URL's first 2xx, or SIGUSR1."""

    def __init__(self, recorder: Recorder, started: float):
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


class Checkpoints:
    """Writes the recorder's traces at each checkpoint. One that cannot be written (a full
    disk) is reported, counted in its trace and retried at the next interval: the recording
    and the workload go on."""

    def __init__(self, interval: float):
        self.interval = interval

    def take(self, recorder: Recorder, t: float, phase_changes: list[dict], final: bool = False) -> None:
        for out, trace in recorder.checkpoint(t, final).items():
            trace.metadata.update(
                phase_changes=phase_changes, checkpoint_failures=trace.metadata.get("checkpoint_failures", 0)
            )
            try:
                write_trace(trace, out)
            except (TracerError, OSError) as err:
                trace.metadata["checkpoint_failures"] += 1
                sys.stderr.write(
                    f"warning: checkpoint {trace.metadata['checkpoint_failures']} failed, recording "
                    f"goes on (retry in {self.interval:g} s): {err}\n"
                )


def run(recorder: Recorder, options: RecordOptions, signals: Signals) -> Recording:
    """Arm, record until the first stop condition, finish; the recorder is closed on every
    way out and the complete traces are written (MachineError when one cannot be)."""
    loaded = time.monotonic()
    load = LoadRunner(options.load_command, recorder.netns, on_line=recorder.note)
    checkpoints = Checkpoints(options.interval)
    try:
        started = _arm(recorder, options, signals, loaded)
        switch = PhaseSwitch(recorder, started or loaded)
        stopped_by = _record(recorder, options, signals, load, checkpoints, switch) if started else None
        stopped_by = signals.stopped_by or stopped_by or "wait"
        recorder.finish(target_ended=stopped_by == "target finished")
        checkpoints.take(recorder, time.monotonic() - switch.started, switch.changes, final=True)
    finally:
        load.stop()
        recorder.close()
    traces = recorder.complete()
    for out, trace in traces.items():
        trace.metadata.update(complete=True, stopped_by=stopped_by, phase_changes=switch.changes)
        if options.load_command:
            trace.metadata["load"] = {"command": options.load_command, "exit_status": load.status}
        _write_final_trace(trace, out)
    return Recording(started is not None, stopped_by, traces, switch.changes, load.status, load.output)


def _arm(recorder: Recorder, options: RecordOptions, signals: Signals, loaded: float) -> float | None:
    """The recording's start (its clock counts from there), or None: stopped, or --wait ran out."""
    while not signals.stop.is_set():
        attempt = time.monotonic()
        if recorder.arm():
            return attempt
        if options.wait is not None and time.monotonic() - loaded >= options.wait:
            return None
        signals.stop.wait(POLL_S)
    return None


def _record(
    recorder: Recorder,
    options: RecordOptions,
    signals: Signals,
    load: LoadRunner,
    checkpoints: Checkpoints,
    switch: PhaseSwitch,
) -> str | None:
    """Turn until a stop condition: why it stopped (None: a stop signal)."""
    if options.ready_url:
        switch.watch_url(options.ready_url, signals.stop, recorder.netns)
    next_checkpoint = switch.started + options.interval
    in_load = False
    while not signals.stop.is_set():
        gone = recorder.target_gone()
        if gone:
            return gone
        if options.duration is not None and time.monotonic() - switch.started >= options.duration:
            return "duration"
        if signals.load_requested.is_set():
            switch.to_load("SIGUSR1")
        if switch.phase == "load" and not in_load:
            in_load = True
            recorder.on_load()
            load.start_once()
        if load.finished:
            return f"load finished (exit {load.status})"
        if time.monotonic() >= next_checkpoint:
            checkpoints.take(recorder, time.monotonic() - switch.started, switch.changes)
            next_checkpoint += options.interval
        signals.stop.wait(min(TURN_S, max(0.0, next_checkpoint - time.monotonic())))
    return None


def _write_final_trace(trace: Trace, out: Path) -> None:
    try:
        write_trace(trace, out)
    except TracerError as err:
        kept = "the last checkpoint written is kept" if out.exists() else "no checkpoint was written"
        raise MachineError(out, f"the final trace could not be written ({err.problem}); {kept}") from None
