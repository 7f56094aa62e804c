"""A recording without BPF or root: the kernel's counters synthesised, the target in memory.

`SyntheticKernel` stands where `tracer.recorder.kernel.KernelRecorder` stands, and
`FakeTarget` where a target does, so the real recorders (`TargetRecorder`, `PodRecorder`) and
the real loop (`tracer.recorder.loop`) run as they do in a recording. `fast_forward` drives
the real checkpoint path through as many checkpoints as an 8-hour recording at `--interval 1`
makes, in seconds. Used by tests/unit/test_record_loop.py, tests/perf/test_checkpoint_cost.py
and `scripts/bench --only checkpoint`.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracer.recorder.loop import Checkpoints, RecordOptions
from tracer.recorder.session import TargetRecorder
from tracer.syscalls import MAX_SYSCALL_NR
from tracer.targets.base import Target
from tracer.trace.arguments import RECORDED_SYSCALLS, ArgumentRow, Arguments
from tracer.trace.format import KERNEL_LOST_REASONS, PHASES, RESULTS, Snapshot

EIGHT_HOURS_AT_ONE_SECOND = 8 * 3600


class SyntheticKernel:
    """Counters that grow like a busy server's: ~60 syscalls at start-up, a new syscall now
    and then (less and less often: a workload's set of syscalls converges, ~130 after 8
    hours), a dozen kinds of capability check, one point per `interval` seconds of a virtual
    clock. Phase load starts when the loader asks, or at the 20th read (`load_at`). In pod
    mode the leaf cgroups in `leaves` have a slot each once armed."""

    capability_source = "tracepoint"
    armed = True

    def __init__(self, interval: float = 1.0, seed: int = 7, load_at: int | None = 20, leaves: tuple[int, ...] = ()):
        self.rng = np.random.default_rng(seed)
        self.interval, self.load_at, self.leaves = interval, load_at, leaves
        self.reads = 0
        self.counters = np.zeros((len(PHASES), MAX_SYSCALL_NR, len(RESULTS)), np.uint64)
        self.capabilities: dict[tuple[int, int, int, int], int] = {}
        self.active = [int(nr) for nr in self.rng.choice(330, 60, replace=False)]
        self.checks = [
            (int(cap), int(nr), int(outcome))
            for cap, nr, outcome in zip(
                self.rng.integers(0, 41, 12), self.rng.choice(self.active, 12), self.rng.integers(0, 4, 12)
            )
        ]
        self.phase = PHASES.index("startup")
        self.phases_set: list[str] = []
        self.pod: tuple[int, int] | None = None
        self.closed = False

    def set_phase(self, phase: str) -> None:
        self.phases_set.append(phase)
        self.phase = PHASES.index(phase)

    def read(self, t: float) -> tuple[Snapshot, dict[str, int]]:
        self.reads += 1
        if self.reads == self.load_at:
            self.phase = PHASES.index("load")
        if self.rng.random() < 8 / (self.reads + 8):
            self.active.append(int(self.rng.integers(0, 330)))
        increments = self.rng.integers(1, 5_000, len(self.active)).astype(np.uint64)
        np.add.at(self.counters[self.phase, :, 0], self.active, increments)
        cap, nr, outcome = self.checks[int(self.rng.integers(0, len(self.checks)))]
        key = (self.phase, cap, nr, outcome)
        self.capabilities[key] = self.capabilities.get(key, 0) + 1
        snapshot = Snapshot(self.reads * self.interval, self.counters.copy(), dict(self.capabilities))
        return snapshot, {reason: 0 for reason in KERNEL_LOST_REASONS} | {"bpf_recursion_misses": 0}

    def arguments(self, slot: int = 0) -> Arguments:
        """A bounded set of argument rows, as the kernel map keeps them (a few socket families)."""
        rows = [ArgumentRow("socket", PHASES[self.phase], (family, 1, 0), 0, self.reads) for family in (1, 2, 10)]
        return Arguments(RECORDED_SYSCALLS, rows)

    def unattributed_capability_checks(self) -> int:
        return 0

    # pod mode: every slot counts the same

    def arm_pod(self, cgroup_id: int, level: int) -> None:
        self.pod = (cgroup_id, level)

    def container_slots(self) -> dict[int, int]:
        return {leaf: slot for slot, leaf in enumerate(self.leaves)} if self.pod else {}

    def read_slots(self, t: float, slots) -> tuple[dict[int, Snapshot], dict[str, int]]:
        snapshot, lost = self.read(t)
        return {slot: snapshot for slot in slots}, lost

    def workload_started(self, slot: int = 0) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class FakeTarget(Target):
    """A command in memory: it runs from `start` until `end()`, `ends_after` seconds, or `stop`."""

    def __init__(self, ends_after: float | None = None, exit_status: int = 0):
        super().__init__("command", "fake workload", Path("/fake"), gated=True)
        self.ends_after, self.exits_with = ends_after, exit_status
        self.started_at: float | None = None
        self.ended = self.stopped = self.closed = False

    def metadata(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "cgroup_path": str(self.cgroup_path),
            "cgroup_id": 0,
            "gated": self.gated,
        }

    def start(self) -> None:
        self.started_at = time.monotonic()

    def end(self) -> None:
        self.ended = True

    def finished(self) -> bool:
        overdue = self.ends_after is not None and time.monotonic() - self.started_at >= self.ends_after
        if self.ended or overdue:
            self.exit_status = self.exits_with
            return True
        return False

    def stop(self) -> None:
        self.stopped = True
        self.exit_status = 143  # as a shell reports SIGTERM

    def close(self) -> None:
        self.closed = True


@dataclass
class CheckpointRun:
    checkpoints: int
    # Each checkpoint's CPU time and wall time, in arrays allocated up front (measuring
    # allocates nothing). CPU time is what the comparisons use: on a shared machine the
    # wall clock also counts the time other processes had the CPU.
    seconds: np.ndarray
    wall_seconds: np.ndarray
    samples: np.ndarray  # every `sample_every` checkpoints: [checkpoint, file bytes, traced memory bytes]
    peak_bytes: int = 0
    points: int = 0
    dropped: int = 0

    def mean_ms(self, start: int, stop: int | None, wall: bool = False) -> float:
        return float(np.mean((self.wall_seconds if wall else self.seconds)[start:stop])) * 1000

    @property
    def file_bytes(self) -> np.ndarray:
        return self.samples[:, 1]

    @property
    def traced_bytes(self) -> np.ndarray:
        return self.samples[:, 2]

    @property
    def flatness(self) -> float:
        """Mean time of the last 100 checkpoints over that of the first 100."""
        return self.mean_ms(-100, None) / self.mean_ms(0, 100)


def fast_forward(
    out: Path, checkpoints: int = EIGHT_HOURS_AT_ONE_SECOND, sample_every: int = 1000, trace_memory: bool = True
) -> CheckpointRun:
    """The recording's checkpoint path (the recorder reads and keeps, the loop writes the
    trace), `checkpoints` times, timed one by one."""
    recorder = TargetRecorder(FakeTarget(), RecordOptions(out, progress=False), SyntheticKernel())
    writer = Checkpoints(interval=1.0)
    phase_changes = [{"phase": "load", "t": 19.0, "reason": "synthetic"}]
    run = CheckpointRun(
        checkpoints,
        np.zeros(checkpoints),
        np.zeros(checkpoints),
        np.zeros((-(-checkpoints // sample_every), 3), np.int64),
    )
    if trace_memory:
        tracemalloc.start()
    try:
        for index in range(checkpoints):
            begin, begin_cpu = time.perf_counter(), time.process_time()
            writer.take(recorder, float(index + 1), phase_changes, final=index == checkpoints - 1)
            run.seconds[index] = time.process_time() - begin_cpu
            run.wall_seconds[index] = time.perf_counter() - begin
            if index % sample_every == 0:
                memory = tracemalloc.get_traced_memory()[0] if trace_memory else 0
                run.samples[index // sample_every] = (index, out.stat().st_size, memory)
        if trace_memory:
            run.peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        if trace_memory:
            tracemalloc.stop()
    run.points, run.dropped = len(recorder.trace.snapshots), recorder.trace.series.dropped
    return run
