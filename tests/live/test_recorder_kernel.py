"""The BPF program itself, loaded: both capability sources pass the kernel's verifier (the table
indices it shares with Python: tests/unit/test_recorder_indices.py)."""

from __future__ import annotations

import mmap
import os
import pty
import re
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.paths import REPO
from tracer.cgroups import cgroup_id, make_cgroup, remove_cgroup
from tracer.recorder.bcc import import_bcc
from tracer.recorder.constants import bpf_cflags
from tracer.recorder.kernel import BPF_SOURCE, KernelRecorder
from tracer.syscalls import native_oci_arch, syscall_number
from tracer.trace.format import PHASES, RESULTS


def test_kprobe_source_passes_the_verifier(live):
    """Nodes without the capability tracepoint use kprobes on cap_capable. This kernel has
    kprobes off, so load the programs through the verifier without attaching them."""
    bcc = import_bcc()
    cflags = [
        "-DTARGET_CGROUP_ID=1ULL",
        "-DGATE_RUNC=1",
        "-DCAP_KPROBE=1",
        "-DCAP_MAP_ENTRIES=64",
        "-DARG_MAP_ENTRIES=64",
        "-DCONNECT_MAP_ENTRIES=64",
        "-DEXIT_FROM_TASK_REGS=1",
        "-DTP_BTF=1",
        *bpf_cflags(),
    ]
    bpf = bcc.BPF(src_file=str(BPF_SOURCE).encode(), cflags=cflags)
    try:
        for name in (b"cap_capable_entry", b"cap_capable_return"):
            assert bpf.load_func(name, bcc.BPF.KPROBE).fd >= 0
    finally:
        bpf.cleanup()


def test_tracepoint_source_loads_and_attaches(live):
    recorder = KernelRecorder(cgroup_id=1, gated=True)
    try:
        assert recorder.capability_source == "tracepoint"
        assert not recorder.armed
        snapshot, lost = recorder.read(0.0)
        assert snapshot.syscalls.shape == (len(PHASES), 512, len(RESULTS)) and not any(lost.values())
    finally:
        recorder.close()


def test_progress_line_on_a_terminal(live, tmp_path):
    """On a terminal, record shows elapsed time, calls, distinct syscalls and new ones."""
    out = tmp_path / "t.json"
    argv = [
        str(REPO / ".venv/bin/tracer"),
        "record",
        "--interval",
        "0.2",
        "--out",
        str(out),
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(1.2)",
    ]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    screen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.waitpid(pid, 0)
    text = screen.decode(errors="replace")
    assert re.search(r"\d+\.\ds +(startup|load) +calls +[\d,]+ +syscalls +\d+ +new \+\d+", text), text


def test_status_lines_in_a_log_while_recording(live, tmp_path):
    """Where stderr is a pipe (a DaemonSet's log), plain lines come during the recording."""
    script = "sleep 1.5; uname -a >/dev/null; sleep 30"
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/tracer"),
            "record",
            "--duration",
            "3",
            "--status-every",
            "1",
            "--out",
            str(tmp_path / "t.json"),
            "--",
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("record: ")]
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    assert len(progress) >= 3, done.stderr  # one a second or so, and the last
    assert re.fullmatch(r"record: \d+s, phase startup, [\d,]+ calls, \d+ syscalls, new: .+, \ds left", progress[0])
    new_names = [re.search(r"new: ([^,]*)", line) for line in progress]
    assert "uname" not in (new_names[0] or [""])[0] and any("uname" in found[1] for found in new_names[1:] if found)
    assert progress[-1].endswith(", 0s left")
    assert done.stderr.index(progress[-1]) < done.stderr.index("recorded ")


def test_quiet_recording_shows_only_the_summary(live, tmp_path):
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/tracer"),
            "record",
            "--quiet",
            "--status-every",
            "0.5",
            "--out",
            str(tmp_path / "t.json"),
            "--",
            "sleep",
            "1.2",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stderr.startswith("recorded ") and "record: " not in done.stderr


def test_load_output_is_streamed_while_recording(live, tmp_path):
    """The load command's lines reach stderr as it writes them, prefixed, not at its end."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    tracer = subprocess.Popen(
        [
            str(REPO / ".venv/bin/tracer"),
            "record",
            "--ready-url",
            url,
            "--out",
            str(tmp_path / "t.json"),
            "--load",
            "echo first; sleep 2; echo second",
            "--",
            "sleep",
            "30",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        arrivals = {}
        for line in tracer.stderr:
            arrivals.setdefault(line.strip(), time.monotonic())
        assert tracer.wait(30) == 0
    finally:
        tracer.kill()
        server.shutdown()
    assert arrivals["load | second"] - arrivals["load | first"] >= 1.5
    assert any(line.startswith("recorded ") and "(load finished (exit 0))" in line for line in arrivals)


MOVED_LOOP = r"""
import mmap, os, sys
os.sched_setaffinity(0, {0})
flag = mmap.mmap(os.open(sys.argv[1], os.O_RDWR), 1)
for _ in range(100000):
    os.getppid()                # outside the target: CPU 0 remembers "no" for this task
flag[0] = 1
while flag[0] != 2:             # spins without a syscall while it is moved into the target
    pass
for _ in range(1000):
    os.getppid()
"""


def test_a_task_moved_into_the_target_is_counted_from_its_next_syscall(live, tmp_path):
    """The per-CPU answer to "is this task in the target?" must not outlive a migration."""
    (tmp_path / "flag").write_bytes(b"\0")
    flag = mmap.mmap(os.open(tmp_path / "flag", os.O_RDWR), 1)
    target = make_cgroup("moved-into")
    os.sched_setaffinity(0, {1})  # this process and the recorder's threads stay off CPU 0
    recorder = KernelRecorder(cgroup_id(target), gated=False)
    try:
        child = subprocess.Popen([sys.executable, "-c", MOVED_LOOP, str(tmp_path / "flag")])
        while flag[0] != 1:
            time.sleep(0.01)
        (target / "cgroup.procs").write_text(str(child.pid))
        flag[0] = 2
        assert child.wait(timeout=30) == 0
        snapshot, lost = recorder.read(0.0)
    finally:
        recorder.close()
        os.sched_setaffinity(0, range(os.cpu_count()))
        remove_cgroup(target)
    getppid = syscall_number(native_oci_arch(), "getppid")
    assert int(snapshot.syscalls[:, getppid, 0].sum()) == 1000 and not any(lost.values())


COUNTED_CHILD = r"""
import os, socket
for _ in range(5000):
    os.getppid()
socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
"""


@pytest.mark.parametrize("without_btf", [False, True], ids=["tp_btf", "without_btf"])
def test_both_ways_of_loading_count_the_same(live, without_btf):
    """Kernels without BTF get a plain raw tracepoint that reads registers through the helper
    and exit/exit_group at their entry tracepoints: the counts must not differ."""
    target = make_cgroup("both-ways")
    recorder = KernelRecorder(cgroup_id(target), gated=False, without_btf=without_btf)
    try:
        assert recorder.regs_from_btf is not without_btf
        child = subprocess.Popen(
            [sys.executable, "-c", COUNTED_CHILD],
            preexec_fn=lambda: (target / "cgroup.procs").write_text(str(os.getpid())),
        )
        assert child.wait(timeout=30) == 0
        snapshot, lost = recorder.read(0.0)
        arguments = recorder.arguments()
    finally:
        recorder.close()
        remove_cgroup(target)
    arch = native_oci_arch()
    calls = snapshot.syscalls[:, :, 0].sum(axis=0)
    assert calls[syscall_number(arch, "getppid")] == 5000 and calls[syscall_number(arch, "exit_group")] == 1
    assert [r.count for r in arguments.rows if r.syscall == "socket" and r["family"] == 10] == [1]
    assert not any(lost.values())
