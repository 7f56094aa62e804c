"""Recording one cgroup (a command, a runc container, a containerd task, a PID, a cgroup
path): the recorder the loop (loop.py) drives for every target but a pod recorded from its
creation (pod.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tracer.network.observe import SurfaceWatch
from tracer.recorder import loop
from tracer.recorder.kernel import KernelRecorder, load_kernel_recorder
from tracer.recorder.loop import RecordOptions, Signals
from tracer.recorder.metadata import recording_metadata, utc_now
from tracer.recorder.progress import Progress
from tracer.targets import Target
from tracer.trace.format import Trace


@dataclass
class RecordResult:
    trace: Trace
    stopped_by: str
    exit_status: int | None
    phase_changes: list[dict] = field(default_factory=list)
    load_status: int | None = None
    load_output: str = ""


class TargetRecorder:
    """One target's cgroup, counted by `kernel` (a KernelRecorder, or the tests' stand-in)
    into one trace, with a progress display and the workload's network surface observed
    when it is ready and before it is stopped."""

    def __init__(self, target: Target, options: RecordOptions, kernel: KernelRecorder):
        self.target, self.out, self.kernel = target, options.out, kernel
        self.netns = target.netns
        self.phase = "startup"
        metadata = recording_metadata(target, kernel.capability_source, options, utc_now())
        self.trace = Trace(metadata, [], {})
        self.progress = Progress.create(options.progress, metadata["arch"], options.duration, options.status_every)
        self.surface = SurfaceWatch(target.netns, target.workload_pid)

    def arm(self) -> bool:
        self.target.start()
        return True

    def set_phase(self, phase: str) -> None:
        self.kernel.set_phase(phase)
        self.phase = phase

    def on_load(self) -> None:
        self.surface.observe_once("ready")

    def target_gone(self) -> str | None:
        return "target finished" if self.target.finished() else None

    def checkpoint(self, t: float, final: bool = False) -> dict[Path, Trace]:
        """Keep the counters (the totals, one point of the bounded series): the same work at
        every checkpoint however long the recording has run."""
        snapshot, lost = self.kernel.read(t)
        trace = self.trace
        trace.keep(snapshot)
        trace.lost = lost
        trace.arguments = self.kernel.arguments()
        if final:
            trace.lost["unattributed_capability_checks"] = self.kernel.unattributed_capability_checks()
        trace.metadata.update(ended_at=utc_now(), workload_started=self.kernel.armed)
        self.progress.update(t, snapshot, self.phase, final)
        return {self.out: trace}

    def finish(self, target_ended: bool) -> None:
        if not target_ended:
            self.surface.observe_once("end")
            self.target.stop()

    def close(self) -> None:
        try:
            self.progress.done()
            self.kernel.close()
        finally:
            self.target.close()

    def complete(self) -> dict[Path, Trace]:
        self.trace.metadata["workload_exit_status"] = self.target.exit_status
        self.trace.network = self.surface.to_json()
        if self.surface.not_observed:
            self.trace.metadata["network_not_observed"] = self.surface.not_observed
        return {self.out: self.trace}

    def note(self, line: str) -> None:
        self.progress.note(line)


def record(target: Target, options: RecordOptions, signals: Signals | None = None) -> RecordResult:
    """Attach, start the target, record until it finishes, --duration, the load command's end
    or SIGINT/SIGTERM/SIGHUP. Returns with the final trace written.

    `signals`: handlers the caller installed before making the target (installed here
    otherwise). The target is closed on every way out: what the recording started stops."""
    own_signals = signals is None
    signals = signals or Signals.install()
    try:
        try:
            signals.refuse_if_stopped()
            kernel = load_kernel_recorder(
                target.cgroup_id,
                gated=target.gated,
                gate_from=target.gate_from,
                capability_source=options.capability_source,
                cap_map_entries=options.cap_map_entries,
                arg_map_entries=options.arg_map_entries,
            )
        except BaseException:
            target.close()
            raise
        try:
            recorder = TargetRecorder(target, options, kernel)
        except BaseException:
            kernel.close()
            target.close()
            raise
        recording = loop.run(recorder, options, signals)  # closes the kernel's program and the target
    finally:
        if own_signals:
            signals.restore()
    return RecordResult(
        recorder.trace,
        recording.stopped_by,
        target.exit_status,
        recording.phase_changes,
        recording.load_status,
        recording.load_output,
    )
