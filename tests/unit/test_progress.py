"""What `tracer record` shows while it runs: a live line on a terminal, plain lines in a log,
nothing with --quiet; the load command's output as it comes. Unit tests on fabricated
snapshots (the live recordings are in test_recorder_kernel.py)."""

from __future__ import annotations

import io
import re
import time

from tracer.recorder.load import run_load_command
from tracer.recorder.progress import LiveLine, LogLines, Progress, Silent, StatusTracker, live_text, log_line
from tracer.syscalls import syscall_number
from tracer.trace.format import PHASES, Snapshot

ARCH = "SCMP_ARCH_X86_64"


def snapshot(t: float, calls: dict[str, int]) -> Snapshot:
    """A snapshot with `calls` (syscall name -> count) made in phase startup, all succeeding."""
    snap = Snapshot.empty(t)
    for name, count in calls.items():
        snap.syscalls[PHASES.index("startup"), syscall_number(ARCH, name), 0] = count
    return snap


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tracker_names_new_syscalls_counts_quiet_time_and_time_left():
    tracker = StatusTracker(ARCH, duration=30)
    first = tracker.status(1.0, snapshot(1.0, {"read": 5, "openat": 2}), "startup")
    assert (first.calls, first.distinct, first.new, first.left) == (7, 2, ["read", "openat"], 29.0)
    later = tracker.status(9.0, snapshot(9.0, {"read": 50, "openat": 2}), "load")
    assert later.new == [] and later.quiet_for == 8.0 and later.left == 21.0
    again = tracker.status(10.0, snapshot(10.0, {"read": 50, "openat": 2, "mmap": 1}), "load")
    assert again.new == ["mmap"] and again.quiet_for == 0.0


def test_terminal_line_shows_counts_new_names_and_time_left():
    status = StatusTracker(ARCH, duration=60).status(12.04, snapshot(12.04, {"read": 1200, "write": 34}), "load")
    text = live_text(status)
    assert re.search(r"\d+\.\ds +(startup|load) +calls +[\d,]+ +syscalls +\d+ +new \+\d+", text), text
    assert "calls        1,234" in text and "syscalls   2" in text and "new +2 (read write)" in text
    assert text.endswith("48s left")


def run_through(progress: Progress) -> None:
    """Two checkpoints with a line of the load command's output between them, then the end."""
    progress.update(1.0, snapshot(1.0, {"read": 3}), "startup")
    progress.note("load | 50/50 ok")
    progress.update(2.0, snapshot(2.0, {"read": 9, "write": 1}), "load")
    progress.done()


def test_terminal_view_redraws_one_line_and_prints_notes_above_it():
    screen = Terminal()
    progress = Progress.create(True, ARCH, stream=screen)
    assert isinstance(progress.display, LiveLine)
    run_through(progress)
    output = screen.getvalue()
    assert "\r\x1b[2K" in output  # back to the line's start and clear it: redrawn in place, not appended
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).replace("\r", "\n").splitlines()
    assert shown.index("load | 50/50 ok") < len(shown) - 1  # the note scrolled above the status line
    assert shown[-1].strip() == "2.0s  load     calls           10  syscalls   2  new +1 (write)"


def test_log_lines_come_at_most_every_few_seconds_and_name_what_is_new():
    log = io.StringIO()
    progress = Progress.create(True, ARCH, duration=20, every=5, stream=log)
    assert isinstance(progress.display, LogLines)
    calls = {"read": 1}
    for second, name in [(1, None), (2, "openat"), (3, None), (6, "mmap"), (7, None), (8, None), (9, None)]:
        if name:
            calls[name] = 1
        progress.update(float(second), snapshot(second, calls), "startup")
    progress.update(10.0, snapshot(10.0, calls), "load", final=True)
    lines = log.getvalue().splitlines()
    assert lines == [
        "record: 1s, phase startup, 1 calls, 1 syscalls, new: read, 19s left",
        "record: 6s, phase startup, 3 calls, 3 syscalls, new: openat mmap, 14s left",
        "record: 10s, phase load, 3 calls, 3 syscalls, no new syscall for 4s, 10s left",
    ]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_quiet_shows_nothing():
    screen = Terminal()
    quiet = Progress.create(False, ARCH, stream=screen)
    assert isinstance(quiet.display, Silent)
    run_through(quiet)
    assert screen.getvalue() == ""


def test_log_line_without_duration_has_no_time_left():
    status = StatusTracker(ARCH).status(3.0, snapshot(3.0, {"read": 2}), "startup")
    assert log_line(status, status.new) == "record: 3s, phase startup, 2 calls, 1 syscalls, new: read"


def test_load_output_is_handed_on_line_by_line_as_it_comes():
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    status, output = run_load_command(
        "echo first; sleep 1; echo second >&2; exit 3",
        on_line=lambda line: seen.append((time.monotonic() - started, line)),
    )
    assert status == 3
    assert [line for _, line in seen] == ["load | first", "load | second"]
    assert seen[1][0] - seen[0][0] >= 0.8  # the first line came before the command went on, not at its end
    assert output == "first\nsecond\n"


def test_a_load_command_past_its_timeout_is_killed_and_says_so():
    status, output = run_load_command("echo started; sleep 30", timeout=0.5)
    assert status == 124 and output.startswith("started\n") and "timed out after 0.5s" in output
