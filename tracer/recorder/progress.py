"""What a recording shows while it runs, on stderr.

On a terminal: one live status line (rich), redrawn at every checkpoint. Anywhere else (a
DaemonSet's log, a CI job, a pipe): a plain line at most every few seconds, so a log shows
the recording is alive and still finding syscalls. Both say the elapsed time, the phase,
the calls and distinct syscalls so far, the syscalls new since the last report by name,
how long no new syscall has appeared and, with --duration, the time left. Lines others
hand in (the load command's output) are shown as they come.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from tracer.syscalls import syscall_name
from tracer.trace.format import PROFILE_PHASES, Snapshot

MAX_NAMES_SHOWN = 8
SLACK_S = 0.1  # checkpoints come a few milliseconds late: a line due at 10 s may show at 9.9 s


@dataclass
class Status:
    """What one checkpoint says about the recording so far."""

    t: float
    phase: str
    calls: int
    distinct: int
    new: list[str] = field(default_factory=list)  # syscalls first seen since the previous status
    quiet_for: float = 0.0  # seconds since a new syscall last appeared
    left: float | None = None  # seconds to --duration, if given


class StatusTracker:
    """Turns successive snapshots into Status: counts, new syscalls by name, quiet time."""

    def __init__(self, arch: str, duration: float | None = None):
        self.arch, self.duration = arch, duration
        self.seen: set[int] = set()
        self.last_new_t = 0.0

    def status(self, t: float, snapshot: Snapshot, phase: str) -> Status:
        calls = snapshot.calls_in(PROFILE_PHASES)
        present = set(np.flatnonzero(calls).tolist())
        new = sorted(present - self.seen)
        self.seen |= present
        if new:
            self.last_new_t = t
        left = max(0.0, self.duration - t) if self.duration is not None else None
        return Status(
            t, phase, int(calls.sum()), len(present), [self._name(nr) for nr in new], t - self.last_new_t, left
        )

    def _name(self, nr: int) -> str:
        return syscall_name(self.arch, nr) or f"syscall_{nr}"


def names_shown(names: list[str]) -> str:
    shown = " ".join(names[:MAX_NAMES_SHOWN])
    return shown + (f" +{len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else "")


def live_text(status: Status) -> str:
    """The terminal's status line: `  12.0s  load     calls   1,234  syscalls  41  new +2 (openat read)`."""
    text = (
        f"{status.t:7.1f}s  {status.phase:<7}  calls {status.calls:>12,}  syscalls {status.distinct:>3}  "
        f"new {len(status.new):+d}"
    )
    if status.new:
        text += f" ({names_shown(status.new)})"
    elif status.quiet_for >= 1:
        text += f"  no new syscall for {status.quiet_for:.0f}s"
    if status.left is not None:
        text += f"  {status.left:.0f}s left"
    return text


def log_line(status: Status, new: list[str]) -> str:
    """A log's status line: `record: 12s, phase load, 1,234 calls, 41 syscalls, new: openat read, 48s left`."""
    parts = [
        f"record: {status.t:.0f}s",
        f"phase {status.phase}",
        f"{status.calls:,} calls",
        f"{status.distinct} syscalls",
    ]
    parts.append(f"new: {names_shown(new)}" if new else f"no new syscall for {status.quiet_for:.0f}s")
    if status.left is not None:
        parts.append(f"{status.left:.0f}s left")
    return ", ".join(parts)


class Silent:
    """--quiet: nothing."""

    def show(self, status: Status, final: bool = False) -> None:
        pass

    def note(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


class LogLines:
    """A plain line at most every `every` seconds (and the last one), for logs and pipes."""

    def __init__(self, stream: TextIO, every: float):
        self.stream, self.every = stream, every
        self.next_due: float | None = None  # the first status shows at once
        self.pending_new: list[str] = []

    def show(self, status: Status, final: bool = False) -> None:
        self.pending_new += status.new
        if final or self.next_due is None or status.t >= self.next_due - SLACK_S:
            self._write(log_line(status, self.pending_new))
            self.pending_new = []
            self.next_due = max(status.t, self.next_due or 0.0) + self.every

    def note(self, line: str) -> None:
        self._write(line)

    def close(self) -> None:
        pass

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class LiveLine:
    """One status line redrawn in place on a terminal; notes scroll above it."""

    def __init__(self, stream: TextIO):
        from rich.console import Console  # noqa: PLC0415 (rich loads only for a terminal)
        from rich.live import Live  # noqa: PLC0415

        self.console = Console(file=stream, highlight=False, markup=False)
        self.live = Live(
            console=self.console, auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=False
        )
        self.live.start()

    def show(self, status: Status, final: bool = False) -> None:
        from rich.text import Text  # noqa: PLC0415

        self.live.update(Text(live_text(status), no_wrap=True, overflow="ellipsis"), refresh=True)

    def note(self, line: str) -> None:
        self.live.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.live.stop()


class Progress:
    """The recording session's reporter: status at each checkpoint, notes at any time, from any thread."""

    def __init__(self, display, tracker: StatusTracker):
        self.display, self.tracker = display, tracker
        self.lock = threading.Lock()

    @classmethod
    def create(
        cls, enabled: bool, arch: str, duration: float | None = None, every: float = 5.0, stream: TextIO | None = None
    ) -> "Progress":
        """A live line on a terminal, plain lines elsewhere, nothing when not enabled (--quiet)."""
        stream = stream or sys.stderr
        if not enabled:
            display = Silent()
        elif stream.isatty():
            display = LiveLine(stream)
        else:
            display = LogLines(stream, every)
        return cls(display, StatusTracker(arch, duration))

    def update(self, t: float, snapshot: Snapshot, phase: str, final: bool = False) -> None:
        with self.lock:
            self.display.show(self.tracker.status(t, snapshot, phase), final)

    def note(self, line: str) -> None:
        with self.lock:
            self.display.note(line)

    def done(self) -> None:
        with self.lock:
            self.display.close()
