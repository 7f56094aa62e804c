"""A recording's checkpoints, fast-forwarded: the real checkpoint path
(`tracer.recorder.session._checkpoint`: keep the counters, rewrite the trace) driven by a
synthetic recorder, as many times as an 8-hour recording at `--interval 1` checkpoints
(28,800), in seconds rather than hours. No BPF, no root.

Used by tests/perf/test_checkpoint_cost.py (bounded file, flat time per write, bounded memory)
and by `scripts/bench --only checkpoint` (the same numbers as a table).
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracer.trace.arguments import RECORDED_SYSCALLS, ArgumentRow, Arguments
from tracer.recorder.session import Progress, _checkpoint
from tracer.syscalls import MAX_SYSCALL_NR
from tracer.trace.format import KERNEL_LOST_REASONS, PHASES, RESULTS, Snapshot, Trace

EIGHT_HOURS_AT_ONE_SECOND = 8 * 3600


class SyntheticRecorder:
    """Counters that grow like a busy server's: ~60 syscalls at start-up, the load phase from
    the 20th checkpoint, a new syscall now and then (less and less often: a workload's set of
    syscalls converges, ~130 after 8 hours), a dozen kinds of capability check, and a
    virtual clock of one checkpoint per `interval` seconds."""

    armed = True

    def __init__(self, interval: float = 1.0, seed: int = 7):
        self.rng = np.random.default_rng(seed)
        self.interval = interval
        self.reads = 0
        self.counters = np.zeros((len(PHASES), MAX_SYSCALL_NR, len(RESULTS)), np.uint64)
        self.capabilities: dict[tuple[int, int, int, int], int] = {}
        self.active = [int(nr) for nr in self.rng.choice(330, 60, replace=False)]
        self.checks = [(int(cap), int(nr), int(outcome)) for cap, nr, outcome in
                       zip(self.rng.integers(0, 41, 12), self.rng.choice(self.active, 12), self.rng.integers(0, 4, 12))]
        self.phase = PHASES.index("startup")

    def read(self, _t: float):
        self.reads += 1
        if self.reads == 20:
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

    def arguments(self) -> Arguments:
        """A bounded set of argument rows, as the kernel map keeps them (a few socket families)."""
        rows = [ArgumentRow("socket", PHASES[self.phase], (family, 1, 0), 0, self.reads) for family in (1, 2, 10)]
        return Arguments(RECORDED_SYSCALLS, rows)

    def unattributed_capability_checks(self) -> int:
        return 0


class PhaseSwitchStandIn:
    phase = "load"
    changes = [{"phase": "load", "t": 19.0, "reason": "synthetic"}]


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


def fast_forward(out: Path, checkpoints: int = EIGHT_HOURS_AT_ONE_SECOND, sample_every: int = 1000,
                 trace_memory: bool = True) -> CheckpointRun:
    recorder, switch, progress = SyntheticRecorder(), PhaseSwitchStandIn(), Progress.create(False, "SCMP_ARCH_X86_64")
    metadata = {"tool": "seccomp-tracer", "arch": "SCMP_ARCH_X86_64", "interval_s": 1.0, "complete": False}
    trace = Trace(metadata, [], {})
    run = CheckpointRun(checkpoints, np.zeros(checkpoints), np.zeros(checkpoints),
                        np.zeros((-(-checkpoints // sample_every), 3), np.int64))
    if trace_memory:
        tracemalloc.start()
    try:
        started = time.monotonic()
        for index in range(checkpoints):
            begin, begin_cpu = time.perf_counter(), time.process_time()
            _checkpoint(recorder, trace, switch, started, out, progress, final=index == checkpoints - 1)
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
    run.points, run.dropped = len(trace.snapshots), trace.series.dropped
    return run
