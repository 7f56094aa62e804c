"""Record a task of a real containerd (its own daemon, state and socket, started here)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
from conftest import tracer_cli
from live import require_live

from tracer.summary import trace_summary
from tracer.trace import load_trace

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
        '[plugins."io.containerd.grpc.v1.cri"]\n  disable_cgroup = true\n')
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                              stdout=subprocess.DEVNULL, stderr=open(base / "log", "w"))
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
    return subprocess.run(["ctr", "--address", str(socket), "-n", NAMESPACE, *args], capture_output=True, text=True, check=check)


def test_running_containerd_task_is_recorded(containerd):
    base, socket = containerd
    rootfs = base / f"rootfs-{uuid.uuid4().hex[:6]}"
    for sub in ("usr", "proc", "dev", "sys", "tmp", "etc"):
        (rootfs / sub).mkdir(parents=True)
    for link in ("bin", "lib", "lib64"):
        (rootfs / link).symlink_to(f"usr/{link}")
    task = f"t{uuid.uuid4().hex[:8]}"
    ctr(socket, "run", "-d", "--mount", "type=bind,src=/usr,dst=/usr,options=rbind:ro", "--rootfs", str(rootfs), task,
        "/bin/sh", "-c", "while :; do cat /proc/self/status >/dev/null; sleep 0.05; done")
    try:
        trace_path = base / f"{task}.trace.json"
        done = tracer_cli("record", "--containerd", task, "--containerd-namespace", NAMESPACE, "--containerd-state", str(base / "state"),
                          "--duration", "1.5", "--out", str(trace_path))
        assert done.returncode == 0, done.stderr
    finally:
        ctr(socket, "task", "kill", "-s", "SIGKILL", task, check=False)
        time.sleep(0.3)
        ctr(socket, "task", "delete", task, check=False)
        ctr(socket, "container", "rm", task, check=False)
    trace = load_trace(trace_path)
    assert trace.metadata["target"]["kind"] == "containerd" and trace.metadata["target"]["gated"] is False
    syscalls = trace_summary(trace)["syscalls"]
    assert syscalls["execve"] >= 10 and syscalls["clock_nanosleep"] >= 10 and syscalls["openat"] >= 10
    done = tracer_cli("record", "--containerd", "nope", "--containerd-namespace", NAMESPACE, "--containerd-state", str(base / "state"),
                      "--out", str(base / "x.json"), check=False)
    assert done.returncode == 2 and "not found" in done.stderr
