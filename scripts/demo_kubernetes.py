"""`scripts/demo --kubernetes`: the mini-NIM as a CRI pod on a private local containerd (its own
CRI plugin, driven as the kubelet drives it), recorded from its first syscall.

The recorder is armed first (`tracer record --kubernetes-selector NS/app=mini-nim`), then the pod
is created (uid 1000, read-only root; a pod network of its own on port 8000 where the CNI plugins
are installed, else the host network on a free port); once it answers, SIGUSR1 starts phase load
and scripts/loadtest.py drives it (on the pod's own loopback, inside its network namespace); the
pod is stopped, which ends the recording. The trace is generated into work/demo-kubernetes/profile/
(profiles/mini-nim/ is the runc demo's), compared with the runtime default, and its network surface
turned into a NetworkPolicy. Containerd, the pod, its network and directories go on every way out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from demo import PYTHON, REPO, TRACER, step

from tracer.embedded.crinode.node import CriNode, mininim_container
from tracer.network.observe import free_port
from tracer.profile.seccomp import allowed_names
from tracer.recorder.load import url_ready
from tracer.trace.format import load_trace
from tracer.trace.summary import trace_summary

WORKDIR = REPO / "work" / "demo-kubernetes"
CONTAINER = "nim-llm"
RUNC_SETUP = {"mount", "pivot_root", "umount2"}  # and sethostname, in a pod network of its own
NIM_PORT = 8000
ARMED = "waiting for it on this node"


def wait_for(check, timeout_s: float, what: str) -> float:
    """Seconds until check() is true; SystemExit naming `what` after timeout_s."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"demo: {what}: not within {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


class Recorder:
    """`tracer record --kubernetes-selector` in the background, its stderr kept and echoed."""

    def __init__(self, endpoint: str, selector: str, out: Path):
        args = [
            TRACER,
            "record",
            "--kubernetes-selector",
            selector,
            "--out",
            f"{out}/",
            "--duration",
            "300",
            "--interval",
            "0.5",
        ]
        print("$ " + " ".join(args), file=sys.stderr, flush=True)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            args,
            env={**os.environ, "CONTAINER_RUNTIME_ENDPOINT": endpoint},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.armed = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            if ARMED in line:
                self.armed.set()

    def wait_armed(self, timeout_s: float = 60) -> float:
        wait_for(lambda: self.armed.is_set() or self.process.poll() is not None, timeout_s, "recorder armed")
        if not self.armed.is_set():
            raise SystemExit(f"demo: tracer record ended before it was armed:\n{''.join(self.lines)}")
        return time.monotonic() - self.started

    def wait(self, timeout_s: float = 60) -> int:
        status = self.process.wait(timeout_s)
        time.sleep(0.1)  # the last lines
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def drive_load(port: int, netns: str | None, requests: int, concurrency: int) -> dict:
    done = step(
        PYTHON,
        str(REPO / "scripts/loadtest.py"),
        "--url",
        f"http://127.0.0.1:{port}",
        *(("--netns", netns) if netns else ()),
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
        "--format",
        "json",
        check=False,
    )
    return json.loads(done.stdout) if done.stdout.strip().startswith("{") else {"errors": "?", "exit": done.returncode}


def record_pod(node: CriNode, traces: Path, requests: int, concurrency: int) -> dict:
    """Arm, start the pod, load it, stop it: the figures and where the trace is."""
    namespace, name = f"demo-{uuid.uuid4().hex[:6]}", f"mini-nim-{uuid.uuid4().hex[:6]}"
    pod_network = node.containerd.pod_network is not None
    port = NIM_PORT if pod_network else free_port()
    container = mininim_container(port, name=CONTAINER, host="0.0.0.0" if pod_network else "127.0.0.1")
    recorder = Recorder(node.containerd.endpoint, f"{namespace}/app=mini-nim", traces)
    try:
        armed_s = recorder.wait_armed()
        started = time.monotonic()
        pod = node.run_pod(name, namespace, [container], labels={"app": "mini-nim"}, host_network=not pod_network)
        netns = pod.network_namespace()
        wait_for(lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready", netns), 60, "mini-NIM ready")
        ready_s = time.monotonic() - started
        recorder.process.send_signal(signal.SIGUSR1)  # phase load
        load = drive_load(port, netns, requests, concurrency)
        pod.stop(grace_period_s=5)  # the recorded container exits: the recording ends
        status = recorder.wait()
    finally:
        recorder.kill()  # nothing if it ended; CriNode.close() removes the pod
    sys.stderr.write("".join(line for line in recorder.lines if line.startswith(("recorded", "lost", "error"))))
    return {
        "status": status,
        "armed_s": armed_s,
        "ready_s": ready_s,
        "load": load,
        "pod": f"{namespace}/{name}",
        "namespace": namespace,
        "pod_network": pod_network,
        "trace": traces / f"{CONTAINER}.trace.json",
        "log": "".join(recorder.lines),
    }


def phase_checks(trace) -> dict:
    summary = trace_summary(trace)
    phases = {phase: set(rows) for phase, rows in summary["phases"].items()}
    later = phases["handover"] | phases["startup"] | phases["load"]
    return {
        "exec_in_startup": "execve" in phases["startup"],
        "setup_runtime_only": RUNC_SETUP <= phases["runtime"] and not RUNC_SETUP & later,
        "accept4_in_load": "accept4" in phases["load"],
    }


def network_policy(run: dict, profile: Path) -> tuple[str, Path | None]:
    """The pod's observed surface as a line, and a NetworkPolicy from it (pod network only)."""
    trace = load_trace(run["trace"])
    if not run["pod_network"]:
        return "host network: no surface of its own (a NetworkPolicy does not apply)", None
    if trace.network is None:
        return f"NOT observed ({trace.metadata.get('network_not_observed')})", None
    listening = ", ".join(
        f"{entry['protocol']} {entry['address']}:{entry['port']}" for entry in trace.network["listening"]
    )
    policy = profile / "k8s" / "mini-nim.networkpolicy.yaml"
    step(
        TRACER,
        "network",
        "policy",
        str(run["trace"]),
        "--name",
        "mini-nim",
        "--selector",
        "app=mini-nim",
        "-n",
        run["namespace"],
        "--out",
        str(policy),
    )
    return f"listening {listening or 'on nothing'}; NetworkPolicy {policy.relative_to(REPO)}", policy


def summary(run: dict, profile: Path, comparison: dict, checks: dict, network: str, passed: bool) -> str:
    trace = load_trace(run["trace"])
    target = trace.metadata["target"]
    seccomp = json.loads((profile / "seccomp.json").read_text())
    caps = json.loads((profile / "capabilities.json").read_text())
    load = run["load"]
    return "\n".join(
        [
            "",
            f"mini-NIM pod profile: {profile.relative_to(REPO)}/",
            f"  pod          {target['pod']['namespace']}/{target['pod']['name']} container {target['container']['name']} "
            f"image {target['container']['image']}",
            f"  timing       recorder armed in {run['armed_s']:.1f} s; pod created to ready in {run['ready_s']:.1f} s",
            f"  load         {load.get('ok', '?')} requests served, {load.get('errors', '?')} errors, "
            f"{load.get('requests_per_s', '?')} req/s (recorded, phase load)",
            f"  syscalls     {len(allowed_names(seccomp))} allowed, against the {comparison['baseline_allowed']} the runtime "
            f"default allows: {len(comparison['narrower']['refused']) / comparison['baseline_allowed']:.0%} refused",
            f"  vs default   {comparison['verdict']}",
            f"  capabilities {', '.join(caps['add']) or 'none'} added (drop ALL)",
            f"  network      {network}",
            f"  first exec   {'in phase startup' if checks['exec_in_startup'] else 'NOT in phase startup'}; runc's set-up "
            f"({' '.join(sorted(RUNC_SETUP))}) {'only in phase runtime' if checks['setup_runtime_only'] else 'LEAKED'}",
            f"  lost         {trace.lost_total()} counters; recording {'complete' if trace.metadata.get('complete') else 'INCOMPLETE'}",
            f"  result       {'PASS' if passed else 'FAIL'}",
        ]
    )


def stop_on_sigterm() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the pod and containerd are cleaned up."""

    def unwind(signum, _frame):
        raise SystemExit(f"demo: stopped by signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, unwind)


def main(requests: int = 200, concurrency: int = 8) -> int:
    stop_on_sigterm()
    shutil.rmtree(WORKDIR, ignore_errors=True)
    traces, profile = WORKDIR / "traces", WORKDIR / "profile"
    traces.mkdir(parents=True)
    with CriNode() as node:
        run = record_pod(node, traces, requests, concurrency)
    if run["status"] != 0 or not run["trace"].exists():
        print(run["log"], file=sys.stderr)
        raise SystemExit(f"demo: the recording failed (exit {run['status']})")
    step(TRACER, "generate", str(run["trace"]), "--out", str(profile), "--format", "json")
    comparison = json.loads(
        step(TRACER, "risk", str(profile), "--against", "runtime-default", "--format", "json", check=False).stdout
    )
    checks = phase_checks(load_trace(run["trace"]))
    network, policy = network_policy(run, profile)
    checks["network_observed"] = policy is not None or not run["pod_network"]
    passed = all(checks.values()) and comparison["findings"] == 0 and run["load"].get("errors") == 0
    print(summary(run, profile, comparison, checks, network, passed))
    return 0 if passed else 1
