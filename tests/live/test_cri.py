"""Finding a pod's container through CRI, and its cgroup v2 directory and id, for real: cgroups made
under this machine's cgroup2 mount, and a pod on the CRI node."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid

import pytest

from support.cli import tracer_cli
from support.live import require_live
from support.waiting import wait_for
from tracer import cgroups
from tracer.embedded.crinode.node import mininim_container
from tracer.kube.cri import cgroup_path
from tracer.network.observe import free_port
from tracer.recorder.load import url_ready
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

POD_UID = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
NIM_ID = "3e5f" + "a" * 60


@pytest.fixture
def cgroup2_scratch(live):
    """A unique parent under the real cgroup2 mount, removed bottom-up afterwards."""
    root = cgroups.cgroup_v2_root()
    if not os.access(root, os.W_OK):
        require_live(f"cannot create cgroups under {root}")
    scratch = root / f"tracer-test-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    yield scratch
    for directory, _, _ in sorted(os.walk(scratch), key=lambda entry: -entry[0].count("/")):
        os.rmdir(directory)


@pytest.mark.parametrize("layout", cgroup_path.kubepods_layouts(POD_UID, NIM_ID))
def test_every_kubelet_layout_resolves_to_a_real_cgroup_and_its_id(cgroup2_scratch, layout):
    expected = cgroup2_scratch / layout
    expected.mkdir(parents=True)

    found = cgroup_path.find_container_cgroup(POD_UID, NIM_ID, root=cgroup2_scratch)

    assert found == expected
    assert (found / "cgroup.procs").exists()  # a real cgroup, made by the kernel
    assert cgroups.cgroup_id(found) == os.stat(expected).st_ino


def test_pid_in_a_real_container_cgroup_is_found_from_proc(cgroup2_scratch):
    container_cgroup = cgroup2_scratch / "kubepods" / f"pod{POD_UID}" / NIM_ID
    container_cgroup.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (container_cgroup / "cgroup.procs").write_text(str(sleeper.pid))
        # no kubelet layout exists under this root: only /proc/<pid>/cgroup can find it
        found = cgroup_path.find_container_cgroup(POD_UID, NIM_ID, pid=sleeper.pid, root=cgroup2_scratch / "none")
        assert found == container_cgroup
        assert cgroups.cgroup_id(found) == os.stat(container_cgroup).st_ino
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()


def test_record_kubernetes_pod_finds_and_records_the_container(cri_node, tmp_path):
    """`tracer record --kubernetes-pod` end to end on a real CRI runtime: lookup, cgroup, BPF, trace."""
    port = free_port()
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    pod = cri_node.run_pod("nim-llm-0", namespace, [mininim_container(port, name="nim-llm")])
    ready = f"http://127.0.0.1:{port}/v1/health/ready"
    wait_for(lambda: url_ready(ready), 30, "mini-NIM ready")
    pid = pod.container_status().pid
    requests = Requests(ready)
    try:
        trace_path = tmp_path / "pod.trace.json"
        done = tracer_cli(
            "record",
            "--kubernetes-pod",
            f"{namespace}/nim-llm-0",
            "--container",
            "nim-llm",
            "--duration",
            "2",
            "--out",
            str(trace_path),
            env={**os.environ, "CONTAINER_RUNTIME_ENDPOINT": cri_node.containerd.endpoint},
        )
    finally:
        requests.stop()
    assert done.returncode == 1 and "start-up missed" in done.stderr, done.stderr  # it already ran
    trace = load_trace(trace_path)
    assert trace.metadata["startup_missed"] is True
    target = trace.metadata["target"]
    assert target["kind"] == "kubernetes-pod" and target["container_id"] == pod.container_id()
    assert target["pod_uid"] == pod.uid
    assert target["cgroup_id"] == os.stat(cgroups.cgroup_of_pid(pid)).st_ino
    assert requests.answered >= 10
    assert trace_summary(trace)["syscalls"].get("accept4", 0) >= 10  # the server taking our requests


class Requests:
    """GET a URL over and over from a thread until stop(), counting the answers."""

    def __init__(self, url: str):
        self.url, self.answered = url, 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(0.02):
            self.answered += url_ready(self.url)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
