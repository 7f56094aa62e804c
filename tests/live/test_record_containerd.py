"""Record a task of a real containerd (its own daemon, state and socket, started here)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

from support.cli import tracer_cli
from support.live import require_live
from support.paths import REPO
from support.waiting import wait_for
from support.workloads import RUNC_SETUP, THREADED_UID_1000, trace_names
from tracer import runc
from tracer.embedded.bundle import make_bundle
from tracer.profile.seccomp import RUNC_HANDOVER_SYSCALLS
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

pytestmark = pytest.mark.usefixtures("live")
NAMESPACE = "tracer-test"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        require_live("containerd is not installed")
    base = tmp_path_factory.mktemp("containerd")
    socket = base / "containerd.sock"
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n[grpc]\n  address = "{socket}"\n'
        '[plugins."io.containerd.grpc.v1.cri"]\n  disable_cgroup = true\n'
    )
    daemon = subprocess.Popen(
        ["containerd", "--config", str(base / "config.toml")], stdout=subprocess.DEVNULL, stderr=open(base / "log", "w")
    )
    deadline = time.monotonic() + 20
    while subprocess.run(["ctr", "--address", str(socket), "version"], capture_output=True).returncode:
        if time.monotonic() > deadline:
            daemon.kill()
            pytest.fail(f"containerd did not start: {(base / 'log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield base, socket
    daemon.terminate()
    daemon.wait(10)


def ctr(socket, *args, check=True):
    return subprocess.run(
        ["ctr", "--address", str(socket), "-n", NAMESPACE, *args], capture_output=True, text=True, check=check
    )


def test_running_containerd_task_is_recorded(containerd):
    base, socket = containerd
    rootfs = base / f"rootfs-{uuid.uuid4().hex[:6]}"
    for sub in ("usr", "proc", "dev", "sys", "tmp", "etc"):
        (rootfs / sub).mkdir(parents=True)
    for link in ("bin", "lib", "lib64"):
        (rootfs / link).symlink_to(f"usr/{link}")
    task = f"t{uuid.uuid4().hex[:8]}"
    ctr(
        socket,
        "run",
        "-d",
        "--mount",
        "type=bind,src=/usr,dst=/usr,options=rbind:ro",
        "--rootfs",
        str(rootfs),
        task,
        "/bin/sh",
        "-c",
        "while :; do cat /proc/self/status >/dev/null; sleep 0.05; done",
    )
    try:
        trace_path = base / f"{task}.trace.json"
        done = tracer_cli(
            "record",
            "--containerd",
            task,
            "--containerd-namespace",
            NAMESPACE,
            "--containerd-state",
            str(base / "state"),
            "--duration",
            "1.5",
            "--out",
            str(trace_path),
        )
        assert done.returncode == 1 and "start-up missed" in done.stderr, done.stderr
    finally:
        ctr(socket, "task", "kill", "-s", "SIGKILL", task, check=False)
        time.sleep(0.3)
        ctr(socket, "task", "delete", task, check=False)
        ctr(socket, "container", "rm", task, check=False)
    trace = load_trace(trace_path)
    assert trace.metadata["target"]["kind"] == "containerd" and trace.metadata["target"]["gated"] is False
    assert trace.metadata["startup_missed"] is True and trace.metadata["target"]["status_at_attach"] == "running"
    syscalls = trace_summary(trace)["syscalls"]
    assert syscalls["execve"] >= 10 and syscalls["clock_nanosleep"] >= 10 and syscalls["openat"] >= 10
    done = tracer_cli(
        "record",
        "--containerd",
        "nope",
        "--containerd-namespace",
        NAMESPACE,
        "--containerd-state",
        str(base / "state"),
        "--out",
        str(base / "x.json"),
        check=False,
    )
    assert done.returncode == 2 and "not found" in done.stderr


def test_created_task_is_gated_at_runc_hand_over(tmp_path):
    """A task created and not yet started (containerd's Tasks.Create without Start): the shim's
    state directory names runc's init, still waiting on its exec fifo. Laid out here as the
    shim lays it out (the bundle, init.pid), around a container made with `runc create`."""
    task = f"t{uuid.uuid4().hex[:8]}"
    task_dir = tmp_path / "state/io.containerd.runtime.v2.task" / NAMESPACE / task
    bundle = make_bundle(task_dir, ["/usr/bin/python3", "-c", THREADED_UID_1000], uid=1000, gid=1000)
    runc.become_subreaper()
    pid = runc.create(bundle, task)
    (task_dir / "init.pid").write_text(str(pid))
    trace_path = tmp_path / "created.trace.json"
    try:
        recorder = subprocess.Popen(
            [
                str(REPO / ".venv/bin/tracer"),
                "record",
                "--containerd",
                task,
                "--containerd-namespace",
                NAMESPACE,
                "--containerd-state",
                str(tmp_path / "state"),
                "--interval",
                "0.2",
                "--duration",
                "60",
                "--out",
                str(trace_path),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(trace_path.exists, 60, "the first checkpoint", process=recorder)  # the first checkpoint: attached
        runc.start(task)  # as the shim's Start would
        _, stderr = recorder.communicate(timeout=60)
        assert recorder.returncode == 0, stderr
    finally:
        runc.delete(task, force=True)
    trace = load_trace(trace_path)
    target = trace.metadata["target"]
    assert target["gated"] is True and target["status_at_attach"] == "created"
    assert "startup_missed" not in trace.metadata and trace.metadata["workload_started"] is True
    assert "execve" in trace_names(trace, "startup")
    assert set(trace_names(trace, "handover")) <= RUNC_HANDOVER_SYSCALLS
    assert not set(trace_names(trace, "startup")) & RUNC_SETUP
