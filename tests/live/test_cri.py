"""Finding a pod's container through CRI, and its cgroup v2 directory and id."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from support.cli import tracer_cli
from support.crinode import wait_until
from support.live import require_live

from tracer import cgroups
from tracer.errors import InputError, MachineError
from tracer.kube.cri import cgroup_path
from tracer.kube.cri import client as cri
from tracer.embedded.crinode.node import mininim_container
from tracer.network.surface import free_port
from tracer.recorder.load import url_ready
from tracer.trace.summary import trace_summary
from tracer.trace.format import load_trace

POD_UID = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
NIM_ID = "3e5f" + "a" * 60

SYSTEMD_BURSTABLE = (f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                     f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{NIM_ID}.scope")


@pytest.fixture
def socket_dir():
    directory = tempfile.mkdtemp(prefix="cri-", dir="/tmp")  # unix socket paths are short
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cgroup_tree(tmp_path, monkeypatch) -> Path:
    """A scratch directory standing in for the cgroup2 mount (ids are inode numbers)."""
    monkeypatch.setattr(cgroup_path, "cgroup_v2_root", lambda: tmp_path)
    return tmp_path


def test_no_cgroup_found_names_what_was_tried(cgroup_tree):
    with pytest.raises(InputError, match=r"no cgroup v2 directory found .* \(tried 12 kubelet cgroup layouts"):
        cgroup_path.find_container_cgroup(POD_UID, NIM_ID)


def test_the_oci_cgroups_path_is_tried_before_the_kubelet_layouts(cgroup_tree):
    elsewhere = cgroup_tree / "custom-root" / NIM_ID
    elsewhere.mkdir(parents=True)
    (cgroup_tree / SYSTEMD_BURSTABLE).mkdir(parents=True)

    found = cgroup_path.find_container_cgroup(POD_UID, NIM_ID, cgroups_path=f"/custom-root/{NIM_ID}")

    assert found == elsewhere


def test_unreachable_runtime_is_a_machine_error(socket_dir):
    endpoint = f"unix://{socket_dir}/absent.sock"
    with pytest.raises(MachineError, match="CRI ListContainers failed: UNAVAILABLE") as caught:
        cri.resolve_pod_container("nim", "p", cri_endpoint=endpoint)
    assert caught.value.source == endpoint and caught.value.exit_code == 3


def test_endpoint_choice_flag_then_environment_then_default_sockets(monkeypatch, socket_dir):
    monkeypatch.setenv(cri.CRI_ENDPOINT_ENV, "/run/crio/crio.sock")
    assert cri.cri_endpoint_for("unix:///custom.sock") == "unix:///custom.sock"
    assert cri.cri_endpoint_for() == "unix:///run/crio/crio.sock"

    monkeypatch.delenv(cri.CRI_ENDPOINT_ENV)
    socket = socket_dir / "containerd.sock"
    socket.touch()
    monkeypatch.setattr(cri, "DEFAULT_CRI_ENDPOINTS", ("unix:///nonexistent.sock", f"unix://{socket}"))
    assert cri.cri_endpoint_for() == f"unix://{socket}"
    socket.unlink()
    with pytest.raises(InputError, match="no CRI socket found"):
        cri.cri_endpoint_for()


# --- cgroup v2 layouts ------------------------------------------------------------------


def test_cgroup2_mount_is_read_from_mountinfo(tmp_path):
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
    unified = tmp_path / "unified"
    unified.write_text("30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
    none = tmp_path / "none"
    none.write_text("22 1 0:21 / /proc rw - proc proc rw\n")

    assert cgroups.cgroup_v2_root(hybrid) == Path("/sys/fs/cgroup/unified")
    assert cgroups.cgroup_v2_root(unified) == Path("/sys/fs/cgroup")
    with pytest.raises(InputError, match="no cgroup2 file system is mounted"):
        cgroups.cgroup_v2_root(none)
    assert (cgroups.cgroup_v2_root() / "cgroup.procs").exists()  # this machine's, for real


@pytest.mark.parametrize("cgroups_path, relative", [
    (f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice:cri-containerd:{NIM_ID}", SYSTEMD_BURSTABLE),
    (f"kubepods-pod{POD_UID.replace('-', '_')}.slice:crio:{NIM_ID}",
     f"kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice/crio-{NIM_ID}.scope"),
    (f"/kubepods/burstable/pod{POD_UID}/{NIM_ID}", f"kubepods/burstable/pod{POD_UID}/{NIM_ID}"),
])
def test_oci_cgroups_path_of_either_driver(cgroups_path, relative):
    assert cgroup_path.relative_from_cgroups_path(cgroups_path) == relative


@pytest.fixture
def cgroup2_scratch():
    """A unique parent under the real cgroup2 mount, removed bottom-up afterwards."""
    try:
        root = cgroups.cgroup_v2_root()
    except InputError:
        require_live("no cgroup2 mount")
    if os.geteuid() != 0 or not os.access(root, os.W_OK):
        require_live("needs root to create cgroups under the cgroup2 mount")
    scratch = root / f"tracer-test-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    yield scratch
    for directory, _, _ in sorted(os.walk(scratch), key=lambda entry: -entry[0].count("/")):
        os.rmdir(directory)


@pytest.mark.live
@pytest.mark.parametrize("layout", cgroup_path.kubepods_layouts(POD_UID, NIM_ID))
def test_every_kubelet_layout_resolves_to_a_real_cgroup_and_its_id(cgroup2_scratch, layout):
    expected = cgroup2_scratch / layout
    expected.mkdir(parents=True)

    found = cgroup_path.find_container_cgroup(POD_UID, NIM_ID, root=cgroup2_scratch)

    assert found == expected
    assert (found / "cgroup.procs").exists()  # a real cgroup, made by the kernel
    assert cgroups.cgroup_id(found) == os.stat(expected).st_ino


@pytest.mark.live
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


@pytest.mark.live
def test_record_kubernetes_pod_finds_and_records_the_container(cri_node, tmp_path):
    """`tracer record --kubernetes-pod` end to end on a real CRI runtime: lookup, cgroup, BPF, trace."""
    port = free_port()
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    pod = cri_node.run_pod("nim-llm-0", namespace, [mininim_container(port, name="nim-llm")])
    ready = f"http://127.0.0.1:{port}/v1/health/ready"
    wait_until(lambda: url_ready(ready), 30, "mini-NIM ready")
    pid = pod.container_status().pid
    requests = Requests(ready)
    try:
        trace_path = tmp_path / "pod.trace.json"
        done = tracer_cli("record", "--kubernetes-pod", f"{namespace}/nim-llm-0", "--container", "nim-llm",
                          "--duration", "2", "--out", str(trace_path),
                          env={**os.environ, "CONTAINER_RUNTIME_ENDPOINT": cri_node.containerd.endpoint})
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
