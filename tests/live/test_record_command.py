"""The `-- COMMAND` target, phases, checkpoints and lost counters, recorded for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from support.cli import tracer_cli
from support.paths import REPO
from support.waiting import wait_for
from tracer.network.observe import free_port
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

pytestmark = pytest.mark.usefixtures("live")

TRACER = str(REPO / ".venv/bin/tracer")


def test_command_output_passes_through_and_its_status_is_kept_not_returned(tmp_path):
    trace_path = tmp_path / "cmd.trace.json"
    done = tracer_cli(
        "record", "--out", str(trace_path), "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 7", check=False
    )
    assert done.returncode == 0  # the recording is complete: the workload's 7 is not ours
    assert done.stdout == "out\n"
    assert "err" in done.stderr and "lost counters: none" in done.stderr
    assert "workload exit status: 7" in done.stderr
    trace = load_trace(trace_path)
    syscalls = trace_summary(trace)["syscalls"]
    assert syscalls["execve"] == 1 and syscalls["write"] >= 2 and syscalls["exit_group"] == 1
    assert trace.metadata["complete"] is True and trace.metadata["workload_exit_status"] == 7


def test_a_command_found_on_path_execs_once(tmp_path):
    """The tracer resolves PATH itself: the failed attempts of a PATH search are not the workload's."""
    trace_path = tmp_path / "true.trace.json"
    env = {**os.environ, "PATH": f"{tmp_path}:/nonexistent:{os.environ['PATH']}"}
    tracer_cli("record", "--out", str(trace_path), "--", "true", env=env)
    assert trace_summary(load_trace(trace_path))["syscalls"]["execve"] == 1


FORKS = r"""
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
static void *nothing(void *arg) { return arg; }
int main(void)
{
    for (int i = 0; i < 300; i++) { pid_t p = vfork(); if (p == 0) _exit(0); waitpid(p, 0, 0); }
    for (int i = 0; i < 200; i++) { pid_t p = fork(); if (p == 0) _exit(0); waitpid(p, 0, 0); }
    for (int i = 0; i < 100; i++) { pthread_t t; pthread_create(&t, 0, nothing, 0); pthread_join(t, 0); }
    return 0;
}
"""


def test_fork_vfork_clone_and_threads_are_counted_once_per_call(tmp_path):
    """The new task also returns from the call that made it (with 0): that return is not a call."""
    (tmp_path / "forks.c").write_text(FORKS)
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(tmp_path / "forks"), str(tmp_path / "forks.c")], check=True)
    out = tmp_path / "forks.trace.json"
    assert tracer_cli("record", "--quiet", "--out", str(out), "--", str(tmp_path / "forks")).returncode == 0
    calls = trace_summary(load_trace(out))["syscalls"]
    assert calls["vfork"] == 300  # glibc's vfork is the vfork syscall
    assert calls["clone"] == 200  # glibc's fork is clone(SIGCHLD)
    assert calls["clone3"] == 100  # pthread_create: clone3
    assert calls["wait4"] == 500


SERVER = """
import http.server, threading, time, urllib.request, sys
port = int(sys.argv[1])
server = http.server.ThreadingHTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(1.5)  # the tracer's ready probe switches to phase load meanwhile
for _ in range(5):
    urllib.request.urlopen(f'http://127.0.0.1:{port}/').read()
server.shutdown()
"""


def test_ready_url_switches_from_startup_to_load(tmp_path):
    port = free_port()
    trace_path = tmp_path / "phases.trace.json"
    tracer_cli(
        "record",
        "--out",
        str(trace_path),
        "--ready-url",
        f"http://127.0.0.1:{port}/",
        "--",
        sys.executable,
        "-c",
        SERVER,
        str(port),
        cwd=tmp_path,
    )
    trace = load_trace(trace_path)
    phases = trace_summary(trace)["phases"]
    assert "execve" in phases["startup"] and "execve" not in phases["load"]
    assert phases["load"]["accept4"]["calls"] >= 5
    (change,) = trace.metadata["phase_changes"]
    assert change["phase"] == "load" and "answered 2xx" in change["reason"]


def test_sigusr1_switches_phase_by_hand(tmp_path):
    trace_path = tmp_path / "usr1.trace.json"
    script = "import os, time; time.sleep(2.0); os.getppid(); os.getppid()"
    tracer = subprocess.Popen(
        [TRACER, "record", "--interval", "0.2", "--out", str(trace_path), "--", sys.executable, "-c", script]
    )
    wait_for(trace_path.exists, 10)
    time.sleep(0.3)
    tracer.send_signal(signal.SIGUSR1)
    assert tracer.wait(30) == 0
    phases = trace_summary(load_trace(trace_path))["phases"]
    assert phases["load"]["getppid"]["calls"] == 2
    assert "getppid" not in phases["startup"]


def test_checkpoints_survive_a_killed_tracer(tmp_path):
    trace_path = tmp_path / "killed.trace.json"
    tracer = subprocess.Popen([TRACER, "record", "--interval", "0.2", "--out", str(trace_path), "--", "sleep", "30"])
    try:
        wait_for(lambda: trace_path.exists() and len(load_trace(trace_path).snapshots) >= 3, 15)
    finally:
        os.kill(tracer.pid, signal.SIGKILL)
        tracer.wait()
    trace = load_trace(trace_path)  # whole and valid: written atomically
    assert trace.metadata["complete"] is False
    assert trace.final.t > 0.3
    assert trace_summary(trace)["syscalls"]["execve"] >= 1


def test_sigterm_stops_cleanly_with_everything_so_far(tmp_path):
    trace_path = tmp_path / "term.trace.json"
    tracer = subprocess.Popen(
        [TRACER, "record", "--out", str(trace_path), "--", "sleep", "30"], stderr=subprocess.PIPE, text=True
    )
    wait_for(trace_path.exists, 10)
    tracer.terminate()
    _, stderr = tracer.communicate(timeout=30)
    trace = load_trace(trace_path)
    assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "SIGTERM"
    assert "(SIGTERM)" in stderr


def test_duration_stops_the_recording(tmp_path):
    trace_path = tmp_path / "duration.trace.json"
    started = time.monotonic()
    tracer_cli("record", "--duration", "1", "--out", str(trace_path), "--", "sleep", "30")
    assert time.monotonic() - started < 20
    assert load_trace(trace_path).metadata["stopped_by"] == "duration"


def test_a_full_kernel_map_is_counted_reported_and_stored(tmp_path):
    trace_path = tmp_path / "lost.trace.json"
    env = {**os.environ, "TRACER_CAP_MAP_ENTRIES": "1"}
    done = tracer_cli(
        "record", "--out", str(trace_path), "--", "/bin/sh", "-c", "ls / >/dev/null; ls / >/dev/null", env=env
    )
    trace = load_trace(trace_path)
    assert trace.lost["cap_map_full"] > 0
    assert f"cap_map_full {trace.lost['cap_map_full']}" in done.stderr
    assert "cap_map_full" in tracer_cli("show", str(trace_path)).stdout


def test_record_of_a_pid_and_a_cgroup(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        trace_path = tmp_path / "pid.trace.json"
        done = tracer_cli(
            "record", "--pid", str(sleeper.pid), "--duration", "0.5", "--format", "json", "--out", str(trace_path)
        )
        assert '"stopped_by": "duration"' in done.stdout
        assert load_trace(trace_path).metadata["target"]["kind"] == "pid"
    finally:
        sleeper.kill()
    done = tracer_cli("record", "--cgroup", "/no/such/cgroup", "--out", str(tmp_path / "x.json"), check=False)
    assert done.returncode == 2 and "not a cgroup v2 directory" in done.stderr
    assert not (tmp_path / "x.json").exists()
