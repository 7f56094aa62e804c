"""Pod-scoped recording from creation: `tracer record --kubernetes-pod NS/POD` for a pod that
does not exist yet, and `--kubernetes-selector NS/LABEL=VALUE` for the next pod with a label.

The BPF program is loaded first, in pod mode (recorder.bpf.c POD_MODE): it counts nothing
until it is told the pod's cgroup. We then poll CRI `ListPodSandbox` by the kubelet's labels
until the pod's sandbox appears on this node, find its pod cgroup and hand its id and depth
to the kernel, which from then on matches every task under it by ancestor
(bpf_get_current_ancestor_cgroup_id) and gives each leaf cgroup (each container, each
restart, the sandbox) a slot of its own, in the kernel, on its first syscall. Nothing is
missed between a container's cgroup being made and user space noticing; CRI only names the
slots afterwards (leaf cgroup id -> container, through ContainerStatus), and the runtime
gate runs per slot: runc's set-up and hand-over (and their capability checks) stay in phase
runtime/handover for each container, its workload counts from its own first exec.

CRI runs no container before its StartContainer, and containerd makes the container's runc
task only then, so arming right after the sandbox appears is in time for every container.
A container that had already started when we armed is reported (`startup_missed: true`,
exit 1), never silently.

Each run of a container (a container id: init containers, each restart) is its own trace:
`--out FILE` records one run (the first container that starts, or the one `--container`
names) and ends when it exits; `--out DIR/` records every run, as DIR/NAME.trace.json and,
for restarts, DIR/NAME.restart-N.trace.json, until the pod stops (an exited container may be
restarted, the next may start late). `merge` combines runs of the same name.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tracer import cgroups
from tracer.errors import InputError, MachineError
from tracer.network.netns import ObservationError
from tracer.network.observe import SurfaceWatch
from tracer.recorder import loop
from tracer.recorder.kernel import POD_SLOTS, KernelRecorder, load_kernel_recorder
from tracer.recorder.loop import RecordOptions, Signals
from tracer.recorder.metadata import recording_metadata, utc_now
from tracer.targets.base import Target
from tracer.trace.format import Trace

CONTAINER_STATES = {0: "created", 1: "running", 2: "exited", 3: "unknown"}  # CRI ContainerState
NAMESPACE_NODE = 2  # CRI NamespaceMode: the pod shares the node's namespace (hostNetwork)


@dataclass(frozen=True)
class PodSelector:
    """Which pod: NAMESPACE/NAME, or the next new pod of NAMESPACE carrying LABEL=VALUE."""

    namespace: str
    name: str | None = None
    label: tuple[str, str] | None = None

    @classmethod
    def named(cls, text: str) -> "PodSelector":
        namespace, slash, name = text.partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise InputError(text, "expected NAMESPACE/POD")
        return cls(namespace, name=name)

    @classmethod
    def labelled(cls, text: str) -> "PodSelector":
        namespace, slash, selector = text.partition("/")
        label, equals, value = selector.partition("=")
        if not slash or not namespace or not equals or not label or not value:
            raise InputError(text, "expected NAMESPACE/LABEL=VALUE")
        return cls(namespace, label=(label, value))

    def labels(self) -> dict[str, str]:
        from tracer.kube.cri.client import LABEL_NAMESPACE, LABEL_POD  # noqa: PLC0415

        labels = {LABEL_NAMESPACE: self.namespace}
        if self.name:
            labels[LABEL_POD] = self.name
        if self.label:
            labels[self.label[0]] = self.label[1]
        return labels

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}" if self.name else f"{self.namespace}/{self.label[0]}={self.label[1]}"


@dataclass
class ContainerRun:
    """One container id of the pod: its slot in the kernel, its trace, and what CRI says of it."""

    container_id: str
    name: str
    attempt: int
    slot: int
    target: Target
    out: Path
    trace: Trace
    state: str = "created"
    exit_code: int | None = None
    missed_at_arming: bool = False


@dataclass
class PodResult:
    selector: str
    pod: dict | None
    runs: list[ContainerRun] = field(default_factory=list)
    stopped_by: str = ""
    not_recorded: list[str] = field(default_factory=list)  # container names seen but not recorded (file mode)
    load_status: int | None = None
    load_output: str = ""


def pod_cgroup_dir(cgroup_parent: str) -> Path:
    """The pod's cgroup v2 directory from the sandbox's cgroup parent (either cgroup driver)."""
    from tracer.kube.cri.cgroup_path import expand_slice  # noqa: PLC0415

    relative = expand_slice(cgroup_parent) if cgroup_parent.endswith(".slice") else cgroup_parent.lstrip("/")
    return cgroups.cgroup_v2_root() / relative


def sandbox_cgroup_parent(client, sandbox) -> str:
    """The cgroup parent the sandbox was made with (containerd's verbose PodSandboxStatus),
    else the kubelet's cgroupfs layouts by pod uid."""
    info = client.pod_sandbox_status(sandbox.id, verbose=True).info
    try:
        config = json.loads(info.get("info") or "{}").get("config") or {}
    except ValueError:
        config = {}
    parent = ((config.get("linux") or {}).get("cgroup_parent")) or ""
    if parent:
        return parent
    for level in ("kubepods/burstable", "kubepods/besteffort", "kubepods"):
        candidate = f"/{level}/pod{sandbox.metadata.uid}"
        if (cgroups.cgroup_v2_root() / candidate.lstrip("/")).is_dir():
            return candidate
    raise MachineError(client.endpoint, f"no cgroup found for pod {sandbox.metadata.namespace}/{sandbox.metadata.name}")


class PodRecorder:
    """The pod, for the loop: wait for it (arm), name the kernel's slots, one trace per run."""

    def __init__(
        self, selector: PodSelector, container: str | None, options: RecordOptions, client, kernel: KernelRecorder, say
    ):
        self.selector, self.container, self.options = selector, container, options
        self.client, self.kernel, self.say = client, kernel, say
        self.netns = None  # the ready URL and the load command run in ours
        self.directory_mode = options.out_is_directory
        self.runs: dict[str, ContainerRun] = {}
        self.ignored: set[str] = set()  # container ids not recorded (another name, or file mode's others)
        self.not_recorded: set[str] = set()
        self.existing: set[str] | None = None  # a selector's sandboxes from before the recording: not the next pod
        self.sandbox = None
        self.pod_cgroup: Path | None = None
        # The pod's network namespace, which all its containers share: observed once per checkpoint.
        self.surface = SurfaceWatch(None, self._running_pid)
        self.loaded = time.monotonic()
        self.started_at = utc_now()

    # ---------------------------------------------------------------- waiting and arming

    def arm(self) -> bool:
        """Once the pod's sandbox is ready on this node: hand its cgroup to the kernel."""
        if self.existing is None:
            self.existing = (
                {s.id for s in self.client.list_pod_sandbox(self.selector.labels())} if self.selector.label else set()
            )
            self.say(f"recorder armed for pod {self.selector.describe()}: waiting for it on this node")
        ready = [
            s
            for s in self.client.list_pod_sandbox(self.selector.labels())
            if s.id not in self.existing and s.state == 0
        ]  # SANDBOX_READY
        if not ready:
            return False
        self.sandbox = max(ready, key=lambda s: s.created_at)
        self.pod_cgroup = pod_cgroup_dir(sandbox_cgroup_parent(self.client, self.sandbox))
        self.host_network = (
            self.client.pod_sandbox_status(self.sandbox.id).status.linux.namespaces.options.network == NAMESPACE_NODE
        )  # the node's network: nothing of its own to observe
        level = len(self.pod_cgroup.relative_to(cgroups.cgroup_v2_root()).parts)
        self.kernel.arm_pod(cgroups.cgroup_id(self.pod_cgroup), level)
        self.armed_at = round(time.monotonic() - self.loaded, 3)  # how long the pod took to appear
        self.started_at = utc_now()  # the time spent waiting for the pod is not the pod's
        self.armed_wall_ns = time.time_ns()
        # A container that had started before the kernel matched the pod: its start-up is missed.
        self.started_before_arming = {
            c.id
            for c in self.client.list_containers(sandbox_id=self.sandbox.id)
            if CONTAINER_STATES.get(c.state) in ("running", "exited")
        }
        self.say(
            f"pod {self.sandbox.metadata.namespace}/{self.sandbox.metadata.name} appeared; "
            f"matching its cgroup {self.pod_cgroup} {self.armed_at:.3f} s after the recorder loaded"
            + (f", recording for {self.options.duration:g} s" if self.options.duration is not None else "")
        )
        return True

    def set_phase(self, phase: str) -> None:
        self.kernel.set_phase(phase)

    def on_load(self) -> None:
        """Nothing to do: the pod's network is observed at every checkpoint."""

    # ---------------------------------------------------------------- containers

    def discover(self) -> None:
        """Name the kernel's slots: each container of the sandbox whose cgroup has a slot."""
        from tracer.kube.cri.cgroup_path import find_container_cgroup  # noqa: PLC0415

        slots = self.kernel.container_slots()
        for container in self.client.list_containers(sandbox_id=self.sandbox.id):
            if container.id in self.runs or container.id in self.ignored:
                continue
            if self.container and container.metadata.name != self.container:
                self.ignored.add(container.id)
                continue
            if not self.directory_mode and self.runs:
                self.ignored.add(container.id)
                self.not_recorded.add(container.metadata.name)
                continue
            status = self.client.container_status(container.id)
            try:
                path = find_container_cgroup(
                    self.sandbox.metadata.uid, container.id, pid=status.pid, cgroups_path=status.cgroups_path
                )
            except InputError:
                continue  # no task yet (created, not started): its cgroup comes with StartContainer
            slot = slots.get(cgroups.cgroup_id(path))
            if slot is None:
                continue  # no syscall of it yet
            self.runs[container.id] = self._new_run(container, status, path, slot)

    def _new_run(self, container, cri_status, path: Path, slot: int) -> ContainerRun:
        status, effective = cri_status.status, cri_status.effective_capabilities
        name, attempt = container.metadata.name, container.metadata.attempt
        pod = self.pod()
        details = {
            "pod": pod,
            "container": {
                "name": name,
                "id": container.id,
                "image": status.image.image or container.image.image,
                "image_digest": status.image_ref or container.image_ref or None,
                "restart_count": attempt,
            },
            "container_id": container.id,
            "pod_uid": pod["uid"],
            "armed_at_s": self.armed_at,
            # How close the arming was: after the sandbox was made, before this container was (CRI clocks).
            "armed_after_sandbox_s": round((self.armed_wall_ns - self.sandbox.created_at) / 1e9, 3),
            "container_created_after_arming_s": round((container.created_at - self.armed_wall_ns) / 1e9, 3),
            **({"effective_capabilities": list(effective)} if effective is not None else {}),
            "pod_cgroup_path": "/" + str(self.pod_cgroup.relative_to(cgroups.cgroup_v2_root())),
        }
        target = Target("kubernetes-pod", f"{pod['namespace']}/{pod['name']}", path, gated=True, details=details)
        metadata = recording_metadata(target, self.kernel.capability_source, self.options, self.started_at)
        missed = container.id in self.started_before_arming
        if missed:
            metadata["startup_missed"] = True
        out = self.options.out
        if self.directory_mode:
            out = out / (f"{name}.trace.json" if attempt == 0 else f"{name}.restart-{attempt}.trace.json")
        return ContainerRun(
            container.id, name, attempt, slot, target, out, Trace(metadata, [], {}), missed_at_arming=missed
        )

    def refresh_states(self) -> None:
        """Each run's state from CRI. A container the runtime no longer knows has exited (it was
        removed); a runtime that does not answer is the machine's problem (CriUnavailable, exit 3),
        never a container that exited."""
        from tracer.kube.cri.client import CriRefused  # noqa: PLC0415 (grpc only when asked for)

        for run in self.runs.values():
            if run.state == "exited":
                continue
            try:
                status = self.client.container_status(run.container_id).status
            except CriRefused:
                run.state = "exited"  # removed
                continue
            run.state = CONTAINER_STATES.get(status.state, "unknown")
            if run.state == "exited":
                run.exit_code = status.exit_code

    def pod(self) -> dict:
        metadata = self.sandbox.metadata
        return {"namespace": metadata.namespace, "name": metadata.name, "uid": metadata.uid}

    # ---------------------------------------------------------------- the end

    def target_gone(self) -> str | None:
        """File mode: its one run exited. Directory mode never ends so: an exited container may
        be restarted (the kubelet's back-off starts at 10 s) and the next one may start late
        (after an init container, an image pull); the pod's end, --duration or a signal ends it."""
        self.discover()
        self.refresh_states()
        if not self.directory_mode and self.runs and all(run.state == "exited" for run in self.runs.values()):
            return "container exited"
        found = self.client.list_pod_sandbox(sandbox_id=self.sandbox.id)
        return "pod stopped" if not found or found[0].state != 0 else None

    def finish(self, target_ended: bool) -> None:
        if self.sandbox is not None:  # a container that started in the last moments still gets its trace
            self.discover()
            self.refresh_states()

    def close(self) -> None:
        self.kernel.close()

    def _running_pid(self) -> int:
        """A process of a running container of the pod, as this PID namespace sees it."""
        running = [run for run in self.runs.values() if run.state == "running"]
        if not running:
            raise ObservationError("no container of the pod is running")
        return visible_pid(running[0].target.cgroup_path)

    # ---------------------------------------------------------------- traces

    def checkpoint(self, t: float, final: bool = False) -> dict[Path, Trace]:
        if not self.runs:
            return {}
        snapshots, lost = self.kernel.read_slots(t, [run.slot for run in self.runs.values()])
        if not self.host_network and any(run.state == "running" for run in self.runs.values()):
            self.surface.observe()
        for run in self.runs.values():
            trace = run.trace
            trace.network = self.surface.to_json()
            trace.keep(snapshots[run.slot])
            trace.lost = dict(lost)
            trace.arguments = self.kernel.arguments(run.slot)
            if final:
                trace.lost["unattributed_capability_checks"] = self.kernel.unattributed_capability_checks()
            trace.metadata.update(ended_at=utc_now(), workload_started=self.kernel.workload_started(run.slot))
        return {run.out: run.trace for run in self.runs.values()}

    def complete(self) -> dict[Path, Trace]:
        for run in self.runs.values():
            meta = run.trace.metadata
            meta["workload_exit_status"] = run.exit_code
            if self.surface.not_observed:
                meta["network_not_observed"] = self.surface.not_observed
            started = meta["workload_started"]
            if run.state == "exited" and not started:
                meta["startup_missed"] = True  # it ran, but its first exec was never seen
            if started and int(run.trace.calls_by_nr(("handover",)).sum()) == 0:
                # No seccomp filter of its own (CRI pods run Unconfined while recorded): runc's
                # hand-over ran unfiltered and was counted in phase runtime. The profile still
                # needs runc's measured hand-over set: generate adds it (RUNC_HANDOVER_SYSCALLS).
                meta["target"]["runtime_handover"] = "unfiltered"
        return {run.out: run.trace for run in self.runs.values()}

    def note(self, line: str) -> None:
        self.say(line)


def record_pod(
    selector: PodSelector,
    container: str | None,
    options: RecordOptions,
    signals: Signals,
    cri_endpoint: str | None = None,
    say=None,
) -> PodResult:
    """Load the program, wait for the pod, arm, record until the containers exit, --duration,
    the load command's end or a stop signal; every run's trace is written on every way out."""
    from tracer.kube.cri.client import CriClient, cri_endpoint_for  # noqa: PLC0415 (grpc only when asked for)

    signals.refuse_if_stopped()
    with CriClient(cri_endpoint_for(cri_endpoint)) as client:
        client.version()  # no runtime behind the socket: say so before the seconds a BPF load takes
        kernel = load_kernel_recorder(
            0,
            gated=True,
            pod_slots=POD_SLOTS,
            capability_source=options.capability_source,
            cap_map_entries=options.cap_map_entries,
            arg_map_entries=options.arg_map_entries,
        )
        recorder = PodRecorder(
            selector, container, options, client, kernel, say or (lambda line: sys.stderr.write(line + "\n"))
        )
        recording = loop.run(recorder, options, signals)  # closes the kernel's program
    return PodResult(
        selector.describe(),
        recorder.pod() if recording.armed else None,
        list(recorder.runs.values()),
        recording.stopped_by,
        sorted(recorder.not_recorded),
        recording.load_status,
        recording.load_output,
    )


def pod_is_running(selector: PodSelector, container: str | None, cri_endpoint: str | None = None) -> bool:
    """Whether the pod already runs (a matching container running): then there is no start-up
    left to record, and `record` attaches to the running container instead."""
    from tracer.kube.cri.client import LABEL_CONTAINER, CriClient, cri_endpoint_for  # noqa: PLC0415

    labels = selector.labels() | ({LABEL_CONTAINER: container} if container else {})
    with CriClient(cri_endpoint_for(cri_endpoint)) as client:
        return bool(client.list_containers(labels, running_only=True))


def visible_pid(container_cgroup: Path) -> int:
    """A process of the container as this PID namespace sees it (none: the recorder runs in a
    PID namespace of its own, as in the DaemonSet, and cannot enter the pod's network)."""
    pids = [pid for pid in cgroups.cgroup_pids(container_cgroup) if pid > 0]  # 0: outside our PID namespace
    if pids:
        return pids[0]
    try:
        populated = "populated 1" in (container_cgroup / "cgroup.events").read_text()
    except OSError:
        populated = False
    if populated:
        raise ObservationError(f"no process of {container_cgroup} is visible from this PID namespace")
    raise ObservationError(f"{container_cgroup} has no process left")
