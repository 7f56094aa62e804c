"""The bounded series of a recording's checkpoints (trace format version 2, `snapshots`).

A recording checkpoints every interval, for hours. Keeping every checkpoint's full counters
made each checkpoint slower and bigger than the last; here the trace keeps the full counters
once (the totals) and, per kept checkpoint, a small point: when it was, the calls so far per
phase, and which syscall and capability rows appeared first since the point before. So the
series still answers how the set of syscalls converged, and its size is bounded:

- at most `limit` points (512): when full, the spacing between kept checkpoints doubles
  and the points off the new grid are folded into the next kept one (their new rows are
  kept, at a coarser time), counted in `dropped`;
- the first point and every phase change (a point whose latest phase with calls is later
  than before) are kept whatever the spacing; phases only move forward, so at most four;
- the latest point is always kept, so the series ends where the totals do.

Each point is encoded once (JSON bytes cached) so that writing the trace joins bytes rather
than re-serialising hundreds of points: a checkpoint costs the same at hour 8 as at second 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

SERIES_LIMIT = 512


@dataclass
class SeriesPoint:
    n: int  # checkpoint number, 0 for the first
    t: float
    phase: int  # the latest phase with calls so far
    calls: tuple[int, ...]  # calls so far per phase
    new_syscalls: list[tuple[int, int]]  # (phase, nr) first called since the previous point
    new_capabilities: list[tuple[int, int, int, int]]  # (phase, cap, nr, outcome) first seen since then
    pinned: bool = False  # the first point or a phase change: never thinned out
    _encoded: bytes | None = field(default=None, repr=False, compare=False)

    def to_document(self) -> dict:
        return {
            "n": self.n,
            "t": round(float(self.t), 3),
            "phase": self.phase,
            "calls": list(self.calls),
            "new_syscalls": [list(row) for row in self.new_syscalls],
            "new_capabilities": [list(row) for row in self.new_capabilities],
        }

    def encoded(self) -> bytes:
        if self._encoded is None:
            # A copy of exact size: orjson's own result keeps its 4 KiB buffer, which for
            # 512 kept points would be 2 MiB of slack.
            self._encoded = bytes(memoryview(orjson.dumps(self.to_document())))
        return self._encoded

    def absorb(self, earlier: "SeriesPoint") -> None:
        """Take over the rows first seen at an earlier point that is being dropped."""
        self.new_syscalls = sorted(earlier.new_syscalls + self.new_syscalls)
        self.new_capabilities = sorted(earlier.new_capabilities + self.new_capabilities)
        self._encoded = None


class SnapshotSeries:
    """The kept points; `record` takes each checkpoint's counters in order."""

    def __init__(self, phases: int = 4, syscalls: int = 512, limit: int = SERIES_LIMIT):
        if limit < 8:
            raise ValueError("a series keeps at least 8 points (the first, up to four phase changes, the latest)")
        self.limit = limit
        self.points: list[SeriesPoint] = []
        self.spacing = 1
        self.dropped = 0
        self._called = np.zeros((phases, syscalls), bool)
        self._capabilities: set[tuple[int, int, int, int]] = set()
        self._encoded_head = b""  # the encoded points before the latest, joined; None when stale

    @property
    def next_n(self) -> int:
        return self.points[-1].n + 1 if self.points else 0

    def record(self, t: float, calls: np.ndarray, capabilities, calls_per_phase: list[int]) -> SeriesPoint:
        """One checkpoint: `calls` [phase, nr] so far, the capability rows (keys) seen so far,
        and the exact calls per phase."""
        called = calls > 0
        new_syscalls = [(int(p), int(n)) for p, n in np.argwhere(called & ~self._called)]
        self._called |= called
        new_capabilities = sorted(key for key in capabilities if key not in self._capabilities)
        self._capabilities.update(new_capabilities)
        phases_with_calls = [p for p, count in enumerate(calls_per_phase) if count]
        point = SeriesPoint(
            self.next_n,
            t,
            phases_with_calls[-1] if phases_with_calls else 0,
            tuple(calls_per_phase),
            new_syscalls,
            new_capabilities,
        )
        self.append(point)
        return point

    def append(self, point: SeriesPoint) -> None:
        point.pinned = not self.points or point.phase > self.points[-1].phase
        if self.points and not self._keeps(self.points[-1]):
            point.absorb(self.points.pop())
            self.dropped += 1
        elif self.points and self._encoded_head is not None:
            self._encoded_head += (b"," if self._encoded_head else b"") + self.points[-1].encoded()
        self.points.append(point)
        while len(self.points) > self.limit:
            self.spacing *= 2
            self._thin()
            self._encoded_head = None

    def _keeps(self, point: SeriesPoint) -> bool:
        return point.pinned or point.n % self.spacing == 0

    def _thin(self) -> None:
        kept, pending, last = [], None, self.points[-1]
        for point in self.points:
            if pending is not None:
                point.absorb(pending)
                pending = None
            if point is last or self._keeps(point):
                kept.append(point)
            else:
                pending = point
                self.dropped += 1
        self.points = kept

    @classmethod
    def from_points(
        cls, points: list[SeriesPoint], dropped: int, phases: int = 4, syscalls: int = 512
    ) -> "SnapshotSeries":
        """A series read back from a file, ready to take more checkpoints."""
        series = cls(phases, syscalls)
        for point in points:
            for phase, nr in point.new_syscalls:
                series._called[phase, nr] = True
            series._capabilities.update(point.new_capabilities)
            point.pinned = not series.points or point.phase > series.points[-1].phase
            series.points.append(point)
        series._encoded_head = None
        series.dropped = dropped
        return series

    def encoded(self) -> bytes:
        """The points as a JSON array. All but the latest are joined once and kept, so this
        costs the same with 500 points as with one."""
        if not self.points:
            return b"[]"
        if self._encoded_head is None:
            self._encoded_head = b",".join(point.encoded() for point in self.points[:-1])
        return b"[" + self._encoded_head + (b"," if self._encoded_head else b"") + self.points[-1].encoded() + b"]"
