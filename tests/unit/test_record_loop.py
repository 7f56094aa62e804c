"""The recording loop's paths, without BPF or root: the real loop and the real recorders, with
the kernel's counters synthesised and the target (or the CRI runtime) in memory
(support/fake_recorder.py). What is checked is what a user sees: why the recording stopped,
the trace on disk, the load command's status, the warnings, what was stopped and released."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from support.fake_recorder import FakeTarget, SyntheticKernel
from tracer import cgroups
from tracer.errors import InputError, MachineError
from tracer.kube.cri.client import CriContainerStatus, CriError, CriUnavailable
from tracer.kube.cri.runtime.v1 import api_pb2 as api
from tracer.recorder import loop
from tracer.recorder.loop import RecordOptions, Signals
from tracer.recorder.pod import PodRecorder, PodSelector
from tracer.recorder.session import TargetRecorder
from tracer.trace.format import load_trace

INTERVAL = 0.05


@pytest.fixture
def signals():
    installed = Signals.install()
    yield installed
    installed.restore()


def after(seconds: float, action) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


def send(signum: int):
    return lambda: os.kill(os.getpid(), signum)


def record(
    tmp_path: Path,
    signals: Signals,
    target: FakeTarget | None = None,
    kernel: SyntheticKernel | None = None,
    out: Path | None = None,
    **options,
):
    """Record `target` with the real loop and the real one-cgroup recorder: (the recording,
    the target, the kernel)."""
    target, kernel = target or FakeTarget(), kernel or SyntheticKernel(load_at=None)
    options = RecordOptions(out or tmp_path / "fake.trace.json", interval=INTERVAL, progress=False, **options)
    return loop.run(TargetRecorder(target, options, kernel), options, signals), target, kernel


def test_the_duration_stops_the_target_and_completes_the_trace(tmp_path, signals):
    recording, target, kernel = record(tmp_path, signals, duration=0.3)
    assert recording.stopped_by == "duration"
    assert target.stopped and target.closed and kernel.closed
    trace = load_trace(tmp_path / "fake.trace.json")
    assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "duration"
    assert trace.metadata["workload_exit_status"] == 143
    assert len(trace.snapshots) >= 4  # checkpointed along the way, every interval
    assert trace.metadata["checkpoint_failures"] == 0


def test_a_target_that_ends_by_itself_is_not_stopped(tmp_path, signals):
    recording, target, kernel = record(tmp_path, signals, FakeTarget(ends_after=0.2, exit_status=7))
    assert recording.stopped_by == "target finished"
    assert not target.stopped and target.closed and kernel.closed
    trace = load_trace(tmp_path / "fake.trace.json")
    assert trace.metadata["stopped_by"] == "target finished" and trace.metadata["workload_exit_status"] == 7


def test_sigterm_ends_the_recording_with_a_complete_trace(tmp_path, signals):
    after(0.25, send(signal.SIGTERM))
    recording, target, _ = record(tmp_path, signals)
    assert recording.stopped_by == "SIGTERM" and target.stopped and target.closed
    trace = load_trace(tmp_path / "fake.trace.json")
    assert trace.metadata["complete"] is True and trace.metadata["stopped_by"] == "SIGTERM"
    assert trace.final.syscalls.sum() > 0


def test_sigusr1_starts_phase_load_and_the_load_command_whose_exit_ends_the_recording(tmp_path, signals):
    started = tmp_path / "load-started"
    after(0.3, send(signal.SIGUSR1))
    recording, target, kernel = record(tmp_path, signals, load_command=f"touch {started}; sleep 0.2; exit 0")
    assert started.exists()
    assert recording.stopped_by == "load finished (exit 0)" and recording.load_status == 0
    assert kernel.phases_set == ["load"] and target.stopped
    [change] = recording.phase_changes
    assert change["reason"] == "SIGUSR1" and change["t"] >= 0.3
    trace = load_trace(tmp_path / "fake.trace.json")
    assert trace.metadata["load"] == {"command": f"touch {started}; sleep 0.2; exit 0", "exit_status": 0}
    assert trace.metadata["phase_changes"] == recording.phase_changes


def test_the_load_command_waits_for_phase_load(tmp_path, signals):
    started = tmp_path / "load-started"
    recording, _, kernel = record(tmp_path, signals, load_command=f"touch {started}", duration=0.3)
    assert not started.exists() and recording.load_status is None
    assert recording.stopped_by == "duration" and kernel.phases_set == []


def test_a_load_command_that_fails_ends_the_recording_with_its_status(tmp_path, signals):
    after(0.1, send(signal.SIGUSR1))
    recording, _, _ = record(tmp_path, signals, load_command="echo overloaded; exit 3")
    assert recording.stopped_by == "load finished (exit 3)"
    assert recording.load_status == 3 and recording.load_output == "overloaded\n"
    assert load_trace(tmp_path / "fake.trace.json").metadata["load"]["exit_status"] == 3


def test_a_failed_checkpoint_is_reported_counted_and_retried(tmp_path, signals, capsys):
    blocked = tmp_path / "traces"
    blocked.write_text("a file where the trace's directory should be")
    after(0.3, blocked.unlink)  # out of the way: the next checkpoint is written
    recording, target, _ = record(tmp_path, signals, FakeTarget(ends_after=0.6), out=blocked / "fake.trace.json")
    assert recording.stopped_by == "target finished" and not target.stopped  # the workload went on
    warnings = [line for line in capsys.readouterr().err.splitlines() if "failed, recording goes on" in line]
    trace = load_trace(blocked / "fake.trace.json")
    assert trace.metadata["complete"] is True
    assert trace.metadata["checkpoint_failures"] == len(warnings) >= 2
    assert warnings[0].startswith(f"warning: checkpoint 1 failed, recording goes on (retry in {INTERVAL:g} s)")


def test_a_final_trace_that_cannot_be_written_is_a_machine_error(tmp_path, signals):
    blocked = tmp_path / "traces"
    blocked.write_text("a file where the trace's directory should be")
    with pytest.raises(MachineError, match="the final trace could not be written .*; no checkpoint was written"):
        record(tmp_path, signals, FakeTarget(ends_after=0.1), out=blocked / "fake.trace.json")


# ---------------------------------------------------------------- a pod, through a CRI runtime in memory


class FakeCri:
    """One pod with one running container, both in this process's own cgroup; `outage()` makes
    the calls it names (default: every call) fail as a runtime that stopped answering does."""

    endpoint = "unix:///fake/cri.sock"

    def __init__(self, appears: bool = True):
        self.appears = appears
        self.failing: tuple[str, set[str] | None] | None = None  # (gRPC code, the methods; None: all)
        relative = "/" + str(cgroups.cgroup_of_pid(os.getpid()).relative_to(cgroups.cgroup_v2_root()))
        self.cgroup = relative
        metadata = api.PodSandboxMetadata(name="web", namespace="shop", uid="uid-1")
        self.sandbox = api.PodSandbox(id="sandbox-1", metadata=metadata, state=0, created_at=1)
        self.container = api.Container(
            id="container-1",
            pod_sandbox_id="sandbox-1",
            state=api.CONTAINER_RUNNING,
            metadata=api.ContainerMetadata(name="app"),
            created_at=2,
        )

    def outage(self, code: str = "UNAVAILABLE", methods: set[str] | None = None) -> None:
        self.failing = (code, methods)

    def _answer(self, method: str) -> None:
        if self.failing and (self.failing[1] is None or method in self.failing[1]):
            raise CriError.of(self.endpoint, method, self.failing[0], "the runtime did not answer")

    def list_pod_sandbox(self, labels=None, sandbox_id=""):
        self._answer("ListPodSandbox")
        return [self.sandbox] if self.appears else []

    def pod_sandbox_status(self, sandbox_id, verbose=False):
        self._answer("PodSandboxStatus")
        info = {"info": json.dumps({"config": {"linux": {"cgroup_parent": self.cgroup}}})}
        host_network = api.LinuxPodSandboxStatus(
            namespaces=api.Namespace(options=api.NamespaceOption(network=api.NODE))
        )
        return api.PodSandboxStatusResponse(status=api.PodSandboxStatus(id=sandbox_id, linux=host_network), info=info)

    def list_containers(self, labels=None, *, running_only=False, sandbox_id=""):
        self._answer("ListContainers")
        return [self.container]

    def container_status(self, container_id):
        self._answer("ContainerStatus")
        status = api.ContainerStatus(id=container_id, state=api.CONTAINER_RUNNING)
        return CriContainerStatus(status, None, self.cgroup)


def pod_kernel(cri: FakeCri) -> SyntheticKernel:
    """The kernel's side: the container's cgroup gets a slot once the pod is armed."""
    return SyntheticKernel(load_at=None, leaves=(cgroups.cgroup_id(cgroups.cgroup_v2_root() / cri.cgroup.lstrip("/")),))


def record_pod(tmp_path: Path, signals: Signals, cri: FakeCri, kernel: SyntheticKernel, **options):
    """Record the fake pod with the real loop and the real pod recorder."""
    options = RecordOptions(tmp_path / "app.trace.json", interval=INTERVAL, progress=False, **options)
    recorder = PodRecorder(PodSelector.named("shop/web"), None, options, cri, kernel, say=lambda line: None)
    return loop.run(recorder, options, signals)


def test_a_pod_that_does_not_appear_within_wait_records_nothing(tmp_path, signals):
    cri = FakeCri(appears=False)
    kernel = pod_kernel(cri)
    recording = record_pod(tmp_path, signals, cri, kernel, wait=0.2)
    assert not recording.armed and recording.stopped_by == "wait" and recording.traces == {}
    assert kernel.pod is None and kernel.closed
    assert not (tmp_path / "app.trace.json").exists()


def test_a_pod_is_armed_and_recorded_until_the_duration(tmp_path, signals):
    cri = FakeCri()
    kernel = pod_kernel(cri)
    recording = record_pod(tmp_path, signals, cri, kernel, duration=0.3)
    assert recording.armed and recording.stopped_by == "duration" and kernel.closed
    trace = load_trace(tmp_path / "app.trace.json")
    assert trace.metadata["complete"] is True and trace.metadata["target"]["container"]["name"] == "app"


@pytest.mark.parametrize("code, methods", [("UNAVAILABLE", None), ("DEADLINE_EXCEEDED", {"ContainerStatus"})])
def test_a_cri_runtime_that_stops_answering_is_exit_3_never_a_container_that_exited(tmp_path, signals, code, methods):
    cri = FakeCri()
    kernel = pod_kernel(cri)
    after(0.3, lambda: cri.outage(code, methods))
    with pytest.raises(CriUnavailable) as raised:
        record_pod(tmp_path, signals, cri, kernel)
    assert kernel.closed  # the kernel's program released on this way out too
    assert raised.value.exit_code == 3 and isinstance(raised.value, MachineError)
    assert not isinstance(raised.value, InputError)
    assert code in str(raised.value)
    trace = load_trace(tmp_path / "app.trace.json")  # the last checkpoint, kept as it was
    assert trace.metadata["complete"] is False and "stopped_by" not in trace.metadata
