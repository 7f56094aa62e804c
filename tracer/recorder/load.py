"""Phase load from outside the workload: is its ready URL answering, and the load command
that the recording runs once the workload is ready."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request


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
        self.status, self.output = run_load_command(
            self.command, self.netns, on_line=self.on_line, on_start=self._started
        )

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


def run_load_command(
    command: str, netns: str | None = None, timeout: float = 600, on_line=None, on_start=None
) -> tuple[int, str]:
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
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env, process_group=0
    ) as process:
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
