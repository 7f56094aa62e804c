"""`tracer record --kubernetes-pod` started before the pod exists, on a real CRI runtime: the
pod is recorded from its first syscall, runc's set-up kept apart per container, and the
profile runs the same workload under runc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from demo import READY_URL, load_command
from ruamel.yaml import YAML

from support.cli import tracer_cli
from support.crinode import SLEEPER, unique, wait_exited
from support.live import require_live
from support.paths import REPO
from support.waiting import wait_for
from tracer.embedded.bundle import mininim_bundle
from tracer.embedded.crinode.images import MININIM_IMAGE
from tracer.embedded.crinode.node import ContainerSpec, mininim_container
from tracer.network.netns import network_namespace
from tracer.network.observe import free_port
from tracer.profile.seccomp import RUNC_HANDOVER_SYSCALLS, allowed_names
from tracer.recorder.load import url_ready
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

RUNC_SETUP = {"mount", "pivot_root", "sethostname", "umount2"}
RUNC_SETUP_HOST_NETWORK = {"mount", "pivot_root", "umount2"}  # a host-network pod keeps the node's hostname
# The mini-NIM's start-up: python's exec, then loading numpy and the model, binding its port.
STARTUP = {"execve", "openat", "mmap", "bind", "listen"}


class Recorder:
    """`tracer record` in the background; ready once it says it waits for the pod."""

    def __init__(self, endpoint: str, *args: str):
        env = {**os.environ, "CONTAINER_RUNTIME_ENDPOINT": endpoint}
        self.process = subprocess.Popen(
            [str(REPO / ".venv/bin/tracer"), "record", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.loaded_at = None
        while self.loaded_at is None:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError(f"tracer record ended before it waited for the pod: {''.join(self.lines)}")
            self.lines.append(line)
            if "waiting for it on this node" in line:
                self.loaded_at = time.monotonic()

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, "".join(self.lines) + err


@pytest.fixture(scope="module")
def recorded_pod(cri_node, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pod")
    namespace, name, port = f"ns-{unique('rec')}", unique("nim-llm"), free_port()
    trace_path = workdir / "pod.trace.json"
    recorder = Recorder(
        cri_node.containerd.endpoint,
        "--kubernetes-pod",
        f"{namespace}/{name}",
        "--out",
        str(trace_path),
        "--duration",
        "120",
        "--interval",
        "0.5",
    )
    started = time.monotonic()
    pod = cri_node.run_pod(name, namespace, [mininim_container(port, name="nim-llm")])
    try:
        ready = f"http://127.0.0.1:{port}/v1/health/ready"
        wait_for(lambda: url_ready(ready), 30, "mini-NIM ready")
        ready_s = time.monotonic() - started
        answered = sum(url_ready(f"http://127.0.0.1:{port}/v1/health/ready") for _ in range(20))
        pod.stop(grace_period_s=5)  # the recorded container exits: the recording ends
        status, log = recorder.wait()
    finally:
        if recorder.process.poll() is None:
            recorder.process.kill()
        pod.remove()
    return {
        "status": status,
        "log": log,
        "trace": load_trace(trace_path),
        "trace_path": trace_path,
        "pod": pod,
        "answered": answered,
        "ready_s": ready_s,
        "workdir": workdir,
    }


def phase_names(trace, phase):
    return set(trace_summary(trace)["phases"][phase])


def test_recording_armed_before_the_pod_ends_with_it_and_exits_0(recorded_pod):
    assert recorded_pod["status"] == 0, recorded_pod["log"]
    assert recorded_pod["answered"] == 20
    meta = recorded_pod["trace"].metadata
    assert meta["complete"] is True and meta["workload_started"] is True and "startup_missed" not in meta
    assert meta["stopped_by"] in ("container exited", "pod stopped")
    # A host-network pod has no network of its own: no section, and nothing missing either.
    assert recorded_pod["trace"].network is None and "network_not_observed" not in meta


def test_startup_holds_the_first_exec_and_runc_set_up_is_runtime_only(recorded_pod):
    trace = recorded_pod["trace"]
    startup, runtime = phase_names(trace, "startup"), phase_names(trace, "runtime")
    assert STARTUP <= startup, STARTUP - startup
    assert RUNC_SETUP_HOST_NETWORK <= runtime, RUNC_SETUP_HOST_NETWORK - runtime
    for phase in ("handover", "startup", "load"):
        assert not RUNC_SETUP & phase_names(trace, phase), phase
    assert trace_summary(trace)["syscalls"].get("accept4", 0) >= 20  # the server took our requests


def test_trace_names_pod_container_and_image(recorded_pod):
    pod, target = recorded_pod["pod"], recorded_pod["trace"].metadata["target"]
    assert target["kind"] == "kubernetes-pod"
    assert target["pod"] == {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid}
    container = target["container"]
    assert container["name"] == "nim-llm" and container["id"] == pod.containers["nim-llm"]
    assert container["restart_count"] == 0 and "mininim" in container["image"]
    assert "sha256:" in container["image_digest"]  # CRI image_ref: repo@sha256:...
    assert target["runtime_handover"] == "unfiltered"  # the pod ran Unconfined while recorded


def test_profile_has_no_capability_and_runs_the_workload_under_runc(recorded_pod, tmp_path):
    profile = tmp_path / "profile"
    tracer_cli("generate", str(recorded_pod["trace_path"]), "--out", str(profile))
    capabilities = json.loads((profile / "capabilities.json").read_text())
    assert capabilities["add"] == [], capabilities
    allowed = allowed_names(json.loads((profile / "seccomp.json").read_text()))
    assert not allowed & RUNC_SETUP
    assert RUNC_HANDOVER_SYSCALLS - {"clone3"} <= allowed  # runc's unfiltered hand-over, still needed under it
    with network_namespace() as netns_path:
        bundle = mininim_bundle(tmp_path / "bundle", netns_path=netns_path)
        done = tracer_cli(
            "verify",
            str(profile),
            "--bundle",
            str(bundle),
            "--ready-url",
            READY_URL,
            "--load",
            load_command(50, 4),
            "--format",
            "json",
        )
    report = json.loads(done.stdout)
    assert report["passed"], report["failures"]


def test_no_new_pod_within_wait_is_reported_and_nothing_written(cri_node, tmp_path, k8s_namespace):
    """--kubernetes-selector takes only a new pod: a labelled pod already running is not it, and
    --wait (not --duration, which counts from the pod's appearance) ends the wait: exit 1."""

    label = unique("app")
    cri_node.run_pod(
        unique("old"), k8s_namespace, [ContainerSpec("idle", MININIM_IMAGE, command=SLEEPER)], labels={"app": label}
    )
    done = tracer_cli(
        "record",
        "--kubernetes-selector",
        f"{k8s_namespace}/app={label}",
        "--wait",
        "1.5",
        "--duration",
        "0.5",
        "--out",
        str(tmp_path / "none.trace.json"),
        env={**os.environ, "CONTAINER_RUNTIME_ENDPOINT": cri_node.containerd.endpoint},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"no pod {k8s_namespace}/app={label} appeared on this node (wait); nothing recorded" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_duration_counts_from_the_pods_appearance(cri_node, tmp_path, k8s_namespace):
    """A recorder armed long before the rollout still records --duration of the pod."""
    name, port = unique("nim-llm"), free_port()
    trace_path = tmp_path / "nim.trace.json"
    recorder = Recorder(
        cri_node.containerd.endpoint,
        "--kubernetes-pod",
        f"{k8s_namespace}/{name}",
        "--out",
        str(trace_path),
        "--duration",
        "2",
    )
    time.sleep(2.5)  # longer than --duration: the recorder keeps waiting
    assert recorder.process.poll() is None
    cri_node.run_pod(name, k8s_namespace, [mininim_container(port, name="nim-llm")])
    status, log = recorder.wait()
    assert status == 0, log
    trace = load_trace(trace_path)
    assert trace.metadata["stopped_by"] == "duration" and trace.metadata["workload_started"] is True
    assert trace.metadata["target"]["armed_at_s"] >= 2.5
    assert 1.5 <= trace.final.t <= 4, trace.final.t  # the trace's clock starts at arming


def test_selector_records_the_next_pod_one_trace_per_container(cri_node, tmp_path, k8s_namespace):
    """--kubernetes-selector with --out DIR/: every container of the new pod gets its own trace,
    the sandbox none; a pod already there with the label is not the one recorded."""

    label = {"app": unique("nim")}
    old = cri_node.run_pod(
        unique("old"), k8s_namespace, [ContainerSpec("idle", MININIM_IMAGE, command=SLEEPER)], labels=label
    )
    out = tmp_path / "traces"
    out.mkdir()
    try:
        recorder = Recorder(
            cri_node.containerd.endpoint,
            "--kubernetes-selector",
            f"{k8s_namespace}/app={label['app']}",
            "--out",
            f"{out}/",
            "--duration",
            "60",
            "--interval",
            "0.5",
        )
        port = free_port()
        new = cri_node.run_pod(
            unique("new"),
            k8s_namespace,
            [mininim_container(port, name="nim-llm"), ContainerSpec("sidecar", MININIM_IMAGE, command=SLEEPER)],
            labels=label,
        )
        try:
            wait_for(lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready"), 30, "mini-NIM ready")
            new.stop(grace_period_s=2)
            status, log = recorder.wait()
        finally:
            new.remove()
    finally:
        if recorder.process.poll() is None:
            recorder.process.kill()
        old.delete()
    assert status == 0, log
    assert sorted(p.name for p in out.iterdir()) == ["nim-llm.trace.json", "sidecar.trace.json"]
    for name in ("nim-llm", "sidecar"):
        trace = load_trace(out / f"{name}.trace.json")
        target = trace.metadata["target"]
        assert target["pod"]["name"] == new.name and target["container"]["name"] == name
        assert target["container"]["id"] == new.containers[name]
        assert trace.metadata["workload_started"] is True and "execve" in phase_names(trace, "startup")
    sleeper = load_trace(out / "sidecar.trace.json")
    assert "bind" not in trace_summary(sleeper)["syscalls"]  # the server's calls are in its own trace only
    server = load_trace(out / "nim-llm.trace.json")
    assert "bind" in trace_summary(server)["syscalls"]


def test_sigusr1_starts_phase_load_and_sigterm_ends_with_the_trace_written(cri_node, tmp_path, k8s_namespace):
    """As scripts/record-nim.sh drives it: load on SIGUSR1 once the pod answers, SIGTERM at the end
    while the pod still runs (the recorder stops nothing)."""

    name, port = unique("nim-llm"), free_port()
    trace_path = tmp_path / "nim.trace.json"
    recorder = Recorder(
        cri_node.containerd.endpoint,
        "--kubernetes-pod",
        f"{k8s_namespace}/{name}",
        "--out",
        str(trace_path),
        "--duration",
        "60",
    )
    pod = cri_node.run_pod(name, k8s_namespace, [mininim_container(port, name="nim-llm")])
    try:
        ready = f"http://127.0.0.1:{port}/v1/health/ready"
        wait_for(lambda: url_ready(ready), 30, "mini-NIM ready")
        recorder.process.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        assert sum(url_ready(ready) for _ in range(10)) == 10
        time.sleep(0.3)
        recorder.process.send_signal(signal.SIGTERM)
        status, log = recorder.wait()
        assert url_ready(ready)  # the pod runs on
    finally:
        if recorder.process.poll() is None:
            recorder.process.kill()
        pod.delete()
    assert status == 0, log
    trace = load_trace(trace_path)
    assert trace.metadata["stopped_by"] == "SIGTERM" and trace.metadata["complete"] is True
    assert [change["reason"] for change in trace.metadata["phase_changes"]] == ["SIGUSR1"]
    assert "accept4" in phase_names(trace, "load") and "execve" in phase_names(trace, "startup")


def test_a_pod_network_is_observed_and_becomes_the_network_policy(cri_node, tmp_path, k8s_namespace):
    """A pod with a network of its own (CNI bridge): what it listens on is observed inside the
    pod's namespace while it runs, and `tracer network policy` opens ingress to that port only."""

    if cri_node.containerd.pod_network is None:
        require_live("the CNI plugins (containernetworking-plugins) are not installed")
    name, port = unique("nim-llm"), 8000
    trace_path = tmp_path / "nim.trace.json"
    recorder = Recorder(
        cri_node.containerd.endpoint,
        "--kubernetes-pod",
        f"{k8s_namespace}/{name}",
        "--out",
        str(trace_path),
        "--duration",
        "60",
        "--interval",
        "0.3",
    )
    pod = cri_node.run_pod(
        name,
        k8s_namespace,
        [mininim_container(port, name="nim-llm", host="0.0.0.0")],
        host_network=False,
        labels={"app": "nim-llm"},
    )
    ip, netns = pod.ip, pod.network_namespace()  # asked on the pod's own loopback
    wait_for(lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready", netns), 30, "mini-NIM ready")
    time.sleep(0.8)  # a checkpoint or two while it listens
    pod.stop(grace_period_s=2)
    status, log = recorder.wait()
    assert status == 0, log
    trace = load_trace(trace_path)
    network = trace.network
    assert {"protocol": "tcp", "address": "0.0.0.0", "port": port} in [
        {k: entry[k] for k in ("protocol", "address", "port")} for entry in network["listening"]
    ]
    addresses = [address for interface in network["interfaces"] for address in interface["addresses"]]
    assert f"{ip}/24" in addresses and "network_not_observed" not in trace.metadata
    policy_path = tmp_path / "netpol.yaml"
    tracer_cli(
        "network",
        "policy",
        str(trace_path),
        "--name",
        "nim-llm",
        "--selector",
        "app=nim-llm",
        "-n",
        k8s_namespace,
        "--out",
        str(policy_path),
    )
    (policy,) = [doc for doc in YAML(typ="safe").load_all(policy_path.read_text()) if doc]
    assert [rule["ports"] for rule in policy["spec"]["ingress"]] == [[{"protocol": "TCP", "port": port}]]


def test_a_restarted_container_is_a_run_of_its_own_and_the_recording_waits_for_it(cri_node, tmp_path, k8s_namespace):
    """--out DIR/: a container that exits is not the pod's end; its restart (the kubelet's, after
    a back-off) is recorded as NAME.restart-1.trace.json; the pod's stop ends the recording."""

    label = unique("job")
    out = tmp_path / "traces"
    recorder = Recorder(
        cri_node.containerd.endpoint,
        "--kubernetes-selector",
        f"{k8s_namespace}/app={label}",
        "--out",
        f"{out}/",
        "--duration",
        "60",
        "--interval",
        "0.3",
    )
    job = ContainerSpec("job", MININIM_IMAGE, command=("/usr/bin/sh", "-c", "sleep 0.5; exit 3"))
    pod = cri_node.run_pod(unique("job"), k8s_namespace, [job], labels={"app": label})
    wait_exited(pod, "job")
    time.sleep(2.5)  # longer than any grace the recorder could give an exited container
    assert recorder.process.poll() is None, "the recording ended with the container, before its restart"
    pod.restart("job")
    wait_exited(pod, "job")
    pod.stop()
    status, log = recorder.wait()
    assert status == 0, log
    assert sorted(p.name for p in out.iterdir()) == ["job.restart-1.trace.json", "job.trace.json"]
    first, restart = load_trace(out / "job.trace.json"), load_trace(out / "job.restart-1.trace.json")
    assert first.metadata["target"]["container"]["restart_count"] == 0
    assert restart.metadata["target"]["container"]["restart_count"] == 1
    assert first.metadata["target"]["container"]["id"] == pod.exited[0]
    assert restart.metadata["target"]["container"]["id"] == pod.containers["job"]
    for trace in (first, restart):
        assert trace.metadata["workload_exit_status"] == 3 and trace.metadata["workload_started"] is True
        assert "execve" in phase_names(trace, "startup") and trace.metadata["stopped_by"] == "pod stopped"
