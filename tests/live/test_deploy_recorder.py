"""The fleet recorder as deploy/daemonset.yaml runs it, on a real CRI node: its init container's
command, with exactly the manifest's capabilities, as uid 0, without the host's PID namespace
(its own PID, cgroup and mount namespaces), with the manifest's read-only mounts read-only.

What it checks is what deploy/README.md promises: the recorder arms first and records the next
new pod with the label from its first syscall, with CAP_BPF and CAP_PERFMON only; its BPF
programs are gone once its traces are written; SIGTERM (pod deletion) ends with complete
traces, or with nothing written when no pod came; exit 1 (findings, in the log) is no failure
for the kubelet to retry, exit 2 and 3 are, with one line in the log.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from support.crinode import unique
from support.paths import REPO
from support.waiting import wait_for
from tracer.cgroups import cgroup_v2_root
from tracer.embedded.crinode.node import ContainerSpec, mininim_container
from tracer.kube.harden import plain
from tracer.network.observe import free_port
from tracer.recorder.load import url_ready
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

pytestmark = pytest.mark.usefixtures("live")

DAEMONSET = REPO / "deploy/daemonset.yaml"

# Runs as the pod's container would: its own cgroup (namespace), PID and mount namespaces,
# the read-only mounts read-only (rbind, the top mount read-only, as runc mounts a readOnly
# hostPath), then the container's capabilities and no_new_privs, then its command.
SANDBOX = r"""
echo $$ > "$SANDBOX_CGROUP/cgroup.procs"
exec unshare --pid --fork --mount-proc --cgroup --propagation private sh -c '
  for path in $READ_ONLY; do mount --rbind "$path" "$path" && mount -o remount,bind,ro "$path"; done
  exec setpriv --reuid 0 --regid 0 --clear-groups --inh-caps="$CAPS" --bounding-set="$CAPS" $NO_NEW_PRIVS -- "$@"
' sandbox "$@"
"""


def recorder_container() -> dict:
    (daemonset,) = [plain(doc) for doc in YAML(typ="rt").load_all(DAEMONSET.read_text()) if doc]
    (container,) = daemonset["spec"]["template"]["spec"]["initContainers"]
    return container


class Sandbox:
    """The recorder init container of deploy/daemonset.yaml, started on this machine."""

    def __init__(
        self,
        tmp_path: Path,
        cri_endpoint: str,
        selector: str,
        container_name: str,
        duration: str = "2",
        extra_env: dict | None = None,
        capabilities: list[str] | None = None,
    ):
        spec = recorder_container()
        self.node = f"node-{uuid.uuid4().hex[:6]}"
        self.traces = tmp_path / "traces"
        self.traces.mkdir(exist_ok=True)
        self.cgroup = cgroup_v2_root() / f"tracer-test-pod-{uuid.uuid4().hex[:8]}"
        self.cgroup.mkdir()
        env = {e["name"]: e.get("value", "") for e in spec["env"]}
        env.update(
            NODE_NAME=self.node,
            TARGET_SELECTOR=selector,
            TARGET_CONTAINER=container_name,
            DURATION=duration,
            CONTAINER_RUNTIME_ENDPOINT=cri_endpoint,
            TRACES_DIR=str(self.traces),
            **(extra_env or {}),
        )
        context = spec["securityContext"]
        assert context["capabilities"]["drop"] == ["ALL"] and context["runAsUser"] == 0
        added = context["capabilities"]["add"] if capabilities is None else capabilities
        caps = ",".join(["-all", *(f"+{cap.lower()}" for cap in added)])
        host_paths = self.read_only_host_paths(spec, cri_endpoint)
        sandbox = {
            "SANDBOX_CGROUP": str(self.cgroup),
            "READ_ONLY": " ".join(host_paths),
            "CAPS": caps,
            "NO_NEW_PRIVS": "" if context.get("allowPrivilegeEscalation", True) else "--no-new-privs",
            "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}",
        }
        self.stderr_path = tmp_path / f"recorder-{uuid.uuid4().hex[:6]}.log"
        with open(self.stderr_path, "w") as log:
            self.process = subprocess.Popen(
                ["sh", "-c", SANDBOX, "sandbox", *spec["command"], *spec["args"]],
                env={**os.environ, **env, **sandbox},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @staticmethod
    def read_only_host_paths(spec: dict, cri_endpoint: str) -> list[str]:
        """The manifest's read-only mounts; the CRI socket's directory is this node's."""
        paths = [m["mountPath"] for m in spec["volumeMounts"] if m.get("readOnly")]
        cri_dir = str(Path(cri_endpoint.removeprefix("unix://")).parent)
        return [cri_dir if path == "/run/containerd" else path for path in paths]

    def wait_armed(self) -> None:
        """Until the recorder says it waits for the pod: the operator's cue to roll the workload out."""
        wait_for(
            lambda: "waiting for it on this node" in self.log or self.process.poll() is not None,
            60,
            "the recorder to arm",
        )
        assert self.process.poll() is None, self.log

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.cgroup.rmdir()

    def pids_in_pod(self) -> list[int]:
        return [int(pid) for pid in (self.cgroup / "cgroup.procs").read_text().split()]

    @property
    def log(self) -> str:
        return self.stderr_path.read_text()

    def trace_files(self) -> list[Path]:
        return sorted(self.traces.glob("*/*.trace.json"))


def bpf_program_ids(pid: int) -> set[int]:
    """The ids of the BPF programs process `pid` holds open."""
    ids = set()
    for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            ids.update(int(line.split()[1]) for line in fdinfo.read_text().splitlines() if line.startswith("prog_id:"))
        except OSError:
            continue
    return ids


BPF_PROG_GET_FD_BY_ID, SYS_BPF = 13, {"x86_64": 321, "aarch64": 280}[os.uname().machine]


def bpf_program_exists(prog_id: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)(prog_id, 0, 0, 0)
    fd = libc.syscall(SYS_BPF, BPF_PROG_GET_FD_BY_ID, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return True
    assert ctypes.get_errno() == errno.ENOENT
    return False


LABEL = "app.kubernetes.io/name"


@pytest.fixture
def workload(k8s_namespace) -> tuple[str, dict]:
    """The selector a recorder is given, and the labels of the pods it is to take."""
    value = unique("nim-llm")
    return f"{k8s_namespace}/{LABEL}={value}", {LABEL: value}


def start_nim_pod(cri_node, k8s_namespace, labels):
    """As `kubectl rollout restart` would: a new pod of the Deployment on this node, in a pod
    network of its own where the node has one (asked on its own loopback), else the node's."""
    pod_network = cri_node.containerd.pod_network is not None
    port = 8000 if pod_network else free_port()
    container = mininim_container(port, name="nim-llm", host="0.0.0.0" if pod_network else "127.0.0.1")
    pod = cri_node.run_pod(unique("nim-llm"), k8s_namespace, [container], labels=labels, host_network=not pod_network)
    netns = pod.network_namespace()
    wait_for(lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready", netns), 30, "mini-NIM ready")
    return pod


def test_the_recorder_arms_first_records_the_new_pod_with_bpf_and_perfmon_only_and_then_holds_no_bpf(
    cri_node, k8s_namespace, workload, tmp_path
):
    selector, labels = workload
    sandbox = Sandbox(tmp_path, cri_node.containerd.endpoint, selector, "nim-llm")
    held = set()

    def recorder_holds_bpf() -> bool:
        for pid in sandbox.pids_in_pod():
            held.update(bpf_program_ids(pid))
        return bool(held) or sandbox.process.poll() is not None

    sandbox.wait_armed()
    wait_for(recorder_holds_bpf, 60, "the recorder to hold its BPF programs")
    pod = start_nim_pod(cri_node, k8s_namespace, labels)
    assert sandbox.wait() == 0, sandbox.log
    (trace_path,) = sandbox.trace_files()
    assert re.fullmatch(rf"{sandbox.node}-\d{{8}}T\d{{6}}Z", trace_path.parent.name)
    assert trace_path.name == "nim-llm.trace.json"
    trace = load_trace(trace_path)
    assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "duration"
    assert trace.metadata["workload_started"] is True and "startup_missed" not in trace.metadata
    target = trace.metadata["target"]
    assert target["kind"] == "kubernetes-pod" and target["container"]["id"] == pod.container_id("nim-llm")
    assert target["pod"]["uid"] == pod.uid
    assert "execve" in trace_summary(trace)["phases"]["startup"]  # the workload's first exec
    if pod.network_namespace():  # without the host's PID namespace it cannot be entered: said, not silent
        assert "is visible from this PID namespace" in trace.metadata["network_not_observed"]
    else:  # the node's network: nothing of the pod's own to observe
        assert "network_not_observed" not in trace.metadata
    assert held, "the recorder's BPF programs were never seen"
    assert not [prog for prog in held if bpf_program_exists(prog)]  # released with the recorder


@pytest.mark.parametrize("missing", ["BPF", "PERFMON"])
def test_each_capability_is_needed(cri_node, workload, tmp_path, missing):
    added = [cap for cap in recorder_container()["securityContext"]["capabilities"]["add"] if cap != missing]
    sandbox = Sandbox(tmp_path, cri_node.containerd.endpoint, workload[0], "nim-llm", capabilities=added)
    assert sandbox.wait() == 3
    (line,) = sandbox.log.splitlines()
    assert line.startswith("error: BPF: the recorder could not be loaded:") and "Operation not permitted" in line


def test_pod_deletion_sigterm_reaches_the_recorder_which_writes_a_complete_trace(
    cri_node, k8s_namespace, workload, tmp_path
):
    selector, labels = workload
    sandbox = Sandbox(tmp_path, cri_node.containerd.endpoint, selector, "nim-llm", duration="600")
    sandbox.wait_armed()
    start_nim_pod(cri_node, k8s_namespace, labels)
    wait_for(sandbox.trace_files, 60, "the first checkpoint")
    stop_with_sigterm(sandbox)
    assert sandbox.wait(60) == 0, sandbox.log
    (trace_path,) = sandbox.trace_files()
    trace = load_trace(trace_path)
    assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "SIGTERM"


def test_deleted_before_any_pod_came_it_leaves_nothing_and_no_failure_to_retry(cri_node, workload, tmp_path):
    sandbox = Sandbox(tmp_path, cri_node.containerd.endpoint, workload[0], "nim-llm", duration="600")
    sandbox.wait_armed()
    stop_with_sigterm(sandbox)
    assert sandbox.wait(60) == 0, sandbox.log  # tracer record exited 1; tini made it 0
    assert f"no pod {workload[0]} appeared on this node (SIGTERM); nothing recorded" in sandbox.log
    assert list(sandbox.traces.iterdir()) == []  # not even an empty directory


def stop_with_sigterm(sandbox: Sandbox) -> None:
    """What the kubelet does when the recorder's pod is deleted: SIGTERM to its pid 1, tini."""
    tini = next(pid for pid in sandbox.pids_in_pod() if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"tini\0"))
    assert f"NSpid:\t{tini}\t1\n" in Path(f"/proc/{tini}/status").read_text()  # the pod's pid 1
    os.kill(tini, signal.SIGTERM)


def test_a_trace_with_lost_counters_is_written_and_no_failure_to_retry(cri_node, k8s_namespace, workload, tmp_path):
    selector, labels = workload
    sandbox = Sandbox(
        tmp_path, cri_node.containerd.endpoint, selector, "busy", extra_env={"TRACER_CAP_MAP_ENTRIES": "1"}
    )  # the kernel's map fills: counters lost
    sandbox.wait_armed()
    busy = ContainerSpec(
        "busy",
        cri_node.mininim_image.name,
        command=("/usr/bin/sh", "-c", "while true; do ls / >/dev/null; sleep 0.05; done"),
    )
    cri_node.run_pod(unique("busy"), k8s_namespace, [busy], labels=labels)
    assert sandbox.wait() == 0, sandbox.log  # tracer record exited 1; tini made it 0
    assert "lost counters: cap_map_full" in sandbox.log
    (trace_path,) = sandbox.trace_files()
    assert load_trace(trace_path).lost["cap_map_full"] > 0


def test_a_missing_cri_socket_is_one_line_and_a_failure_to_retry(tmp_path):
    socket_dir = tmp_path / "run-containerd"  # the directory is there, containerd is not
    socket_dir.mkdir()
    sandbox = Sandbox(tmp_path, f"unix://{socket_dir}/containerd.sock", f"nim/{LABEL}=nim-llm", "nim-llm")
    assert sandbox.wait() == 3
    (line,) = sandbox.log.splitlines()
    assert line.startswith(f"error: unix://{socket_dir}/containerd.sock: CRI Version failed: UNAVAILABLE"), line
    assert sandbox.trace_files() == []


def test_a_malformed_selector_is_one_line_and_a_failure_to_retry(cri_node, tmp_path):
    sandbox = Sandbox(tmp_path, cri_node.containerd.endpoint, "nim-llm", "nim-llm")
    assert sandbox.wait() == 2
    (line,) = sandbox.log.splitlines()
    assert line == "error: nim-llm: expected NAMESPACE/LABEL=VALUE"
    assert list(sandbox.traces.iterdir()) == []
