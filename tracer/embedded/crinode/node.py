"""Run pods through a CRI runtime the way the kubelet does, with no kubelet and no API server.

`run_pod` makes the calls the kubelet makes for a pod (kuberuntime's SyncPod): ImageStatus for
each image, RunPodSandbox, then CreateContainer and StartContainer per container; `Pod.stop`
and `Pod.remove` make the ones it makes when the pod goes (StopContainer, StopPodSandbox,
RemoveContainer, RemovePodSandbox) and remove the pod's cgroups as its pod cgroup manager does.
Requests carry what the kubelet puts in them: the pod and container labels
(io.kubernetes.pod.name, ...namespace, ...uid, io.kubernetes.container.name), the pod's log
directory, and its cgroup parent under the cgroupfs driver: `/kubepods/burstable/pod<uid>`,
so a container's cgroup is `/kubepods/burstable/pod<uid>/<container id>` in every hierarchy.

Every container runs as the given uid on a read-only root with all capabilities dropped and
no privilege escalation (a `restricted` pod), with the seccomp profile asked for.

`CriNode` puts it together for tests and demos: a private containerd with its CRI plugin, the
pause and mini-NIM images built here and imported.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tracer.cgroups import remove_cgroup
from tracer.embedded.crinode import images
from tracer.embedded.crinode.containerd import PrivateContainerd
from tracer.errors import InputError
from tracer.kube.cri.client import (
    LABEL_CONTAINER,
    LABEL_NAMESPACE,
    LABEL_POD,
    LABEL_POD_UID,
    CriClient,
    CriContainerStatus,
    CriError,
)
from tracer.kube.cri.runtime.v1 import api_pb2 as api

QOS_CLASS = "burstable"  # a pod with requests below its limits; the kubelet's level for it
BURSTABLE_CPU_SHARES = 102  # what the kubelet sets for a 100m CPU request
BURSTABLE_OOM_SCORE_ADJ = 999  # the kubelet's score for a burstable pod with a tiny memory request
RUNTIME_DEFAULT = "RuntimeDefault"
# kubelet's defaults for a container that does not ask for procMount: Unmasked
# (k8s.io/kubernetes pkg/securitycontext/util.go)
DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@dataclass(frozen=True)
class Mount:
    """A hostPath volume mounted into a container."""

    host_path: str
    container_path: str
    readonly: bool = True


HOST_USR = Mount(*images.HOST_USR_MOUNT)


@dataclass(frozen=True)
class ContainerSpec:
    """The part of a pod's container the runtime sees. No command: the image's entrypoint."""

    name: str
    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = (HOST_USR,)
    empty_dirs: Sequence[str] = ("/tmp",)  # container paths of writable emptyDir volumes


def mininim_container(
    port: int, name: str = "nim", image: str = images.MININIM_IMAGE, host: str = "127.0.0.1"
) -> ContainerSpec:
    """The mini-NIM image's server on `host`:`port` (0.0.0.0 in a pod network: the pod's IP),
    with the host's /usr mounted read-only."""
    return ContainerSpec(name, image, env={"NIM_SERVER_HOST": host, "NIM_SERVER_PORT": str(port)}, mounts=(HOST_USR,))


@dataclass
class Pod:
    """A pod the runtime runs: its sandbox and its containers by name."""

    name: str
    namespace: str
    uid: str
    sandbox_id: str
    cgroup_parent: str
    pod_directory: Path  # the kubelet's /var/lib/kubelet/pods/<uid>: the pod's volumes
    log_directory: Path  # the kubelet's /var/log/pods/<namespace>_<name>_<uid>
    sandbox_config: api.PodSandboxConfig
    client: CriClient
    containers: dict[str, str] = field(default_factory=dict)  # name: id of its latest attempt
    exited: list[str] = field(default_factory=list)  # earlier attempts, kept as the kubelet keeps them
    configs: dict[str, api.ContainerConfig] = field(default_factory=dict)

    def container_id(self, name: str | None = None) -> str:
        if name is None:
            if len(self.containers) != 1:
                raise InputError(
                    None, f"pod {self.namespace}/{self.name} runs {len(self.containers)} containers: name one"
                )
            return next(iter(self.containers.values()))
        return self.containers[name]

    def container_status(self, name: str | None = None) -> CriContainerStatus:
        return self.client.container_status(self.container_id(name))

    @property
    def ip(self) -> str:
        """The pod's address in the pod network ("" for a host-network pod)."""
        return self.client.pod_sandbox_status(self.sandbox_id).status.network.ip

    def network_namespace(self) -> str | None:
        """The name of the pod's network namespace under /run/netns, where the runtime pins it
        (None for a host-network pod): its loopback is the pod's, reachable from this node
        without sending anything over an interface."""
        info = json.loads(self.client.pod_sandbox_status(self.sandbox_id, verbose=True).info.get("info") or "{}")
        for namespace in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
            if namespace.get("type") == "network" and namespace.get("path"):
                return Path(namespace["path"]).name
        return None

    def start_container(self, config: api.ContainerConfig) -> str:
        """CreateContainer and StartContainer in this pod's sandbox; the container's id."""
        container_id = self.client.create_container(self.sandbox_id, config, self.sandbox_config)
        self.containers[config.metadata.name] = container_id
        self.configs[config.metadata.name] = config
        self.client.start_container(container_id)
        return container_id

    def restart(self, name: str) -> str:
        """As the kubelet restarts a container: stop it (it stays, exited), start the next attempt."""
        previous = self.containers[name]
        self.client.stop_container(previous)
        self.exited.append(previous)
        config = api.ContainerConfig()
        config.CopyFrom(self.configs[name])
        config.metadata.attempt += 1
        config.annotations["io.kubernetes.container.restartCount"] = str(config.metadata.attempt)
        config.log_path = f"{name}/{config.metadata.attempt}.log"
        return self.start_container(config)

    def stop(self, grace_period_s: int = 0) -> None:
        """Stop signal to every container, SIGKILL after the grace period; then the sandbox."""
        for container_id in self.containers.values():
            self.client.stop_container(container_id, grace_period_s)
        self.client.stop_pod_sandbox(self.sandbox_id)

    def remove(self) -> None:
        """Containers, sandbox, the pod's cgroups, volumes and logs, as the kubelet cleans up."""
        for container_id in [*self.exited, *self.containers.values()]:
            ignore_not_found(self.client.remove_container, container_id)
        ignore_not_found(self.client.remove_pod_sandbox, self.sandbox_id)
        remove_pod_directories(self.pod_directory, self.log_directory)
        remove_pod_cgroups(self.cgroup_parent)

    def delete(self) -> None:
        """stop() then remove(), as `kubectl delete pod --grace-period=0` ends in."""
        try:
            self.stop()
        finally:
            self.remove()


def run_pod(
    client: CriClient,
    name: str,
    namespace: str,
    containers: Sequence[ContainerSpec],
    *,
    node_directory: Path,
    uid: int = 1000,
    read_only_root: bool = True,
    host_network: bool = True,
    seccomp: str | Path | None = None,
    pod_uid: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Pod:
    """Start a pod as the kubelet would and return it running; on failure nothing is left.

    node_directory: holds the pods' volumes (pods/<uid>/, the kubelet's /var/lib/kubelet/pods)
    and logs (logs/<namespace>_<name>_<uid>/, its /var/log/pods).
    seccomp: None for Unconfined (the kubelet's default), "RuntimeDefault", or the path of
    a profile on this node (Localhost), applied to every container.
    labels: the pod's own labels (metadata.labels), which the kubelet puts on the sandbox.
    """
    if not containers:
        raise InputError(None, f"pod {namespace}/{name} has no containers")
    pod_uid = pod_uid or str(uuid.uuid4())
    seccomp_profile = security_profile(seccomp)
    if not host_network:
        require_network_ready(client)
    image_ids = {spec.image: image_id(client, spec.image) for spec in containers}
    pod_directory = node_directory / "pods" / pod_uid
    log_directory = node_directory / "logs" / f"{namespace}_{name}_{pod_uid}"
    sandbox_config = pod_sandbox_config(name, namespace, pod_uid, log_directory, host_network, labels)
    try:
        volumes = {spec.name: make_empty_dirs(pod_directory, spec) for spec in containers}
        for spec in containers:
            (log_directory / spec.name).mkdir(parents=True, exist_ok=True)
        sandbox_id = client.run_pod_sandbox(sandbox_config)
    except BaseException:
        remove_failed_sandboxes(client, pod_uid)
        remove_pod_directories(pod_directory, log_directory)
        remove_pod_cgroups(sandbox_config.linux.cgroup_parent)
        raise
    pod = Pod(
        name,
        namespace,
        pod_uid,
        sandbox_id,
        sandbox_config.linux.cgroup_parent,
        pod_directory,
        log_directory,
        sandbox_config,
        client,
    )
    try:
        for spec in containers:
            pod.start_container(
                container_config(
                    spec,
                    image_ids[spec.image],
                    sandbox_config,
                    volumes[spec.name],
                    uid,
                    read_only_root,
                    seccomp_profile,
                )
            )
    except BaseException:
        pod.delete()
        raise
    return pod


def require_network_ready(client: CriClient) -> None:
    """The kubelet starts no pod with a pod network while the runtime's NetworkReady condition
    is false: containerd would make the sandbox and its network namespace, fail in CNI, and
    then be unable to stop it without CNI either."""
    for condition in client.status().conditions:
        if condition.type == "NetworkReady" and not condition.status:
            raise InputError(
                client.endpoint,
                f"network is not ready: NetworkReady=false reason:{condition.reason} message:{condition.message}",
            )


def remove_failed_sandboxes(client: CriClient, pod_uid: str) -> None:
    """A RunPodSandbox that failed may leave a not-ready sandbox: stop and remove it, as the
    kubelet's next sync would. Best effort: the error that matters is RunPodSandbox's."""
    try:
        for sandbox in client.list_pod_sandbox({LABEL_POD_UID: pod_uid}):
            ignore_not_found(client.stop_pod_sandbox, sandbox.id)
            ignore_not_found(client.remove_pod_sandbox, sandbox.id)
    except CriError:
        pass


def image_id(client: CriClient, image: str) -> str:
    """The image's id, as the kubelet resolves it before CreateContainer (it pulls nothing here)."""
    found = client.image_status(image)
    if found is None:
        raise InputError(client.endpoint, f"image {image} is not on this node (import it first)")
    return found.id


def pod_cgroup_parent(pod_uid: str, qos: str = QOS_CLASS) -> str:
    """The kubelet's pod cgroup under the cgroupfs driver (guaranteed pods sit in /kubepods)."""
    level = "/kubepods" if qos == "guaranteed" else f"/kubepods/{qos}"
    return f"{level}/pod{pod_uid}"


def pod_labels(name: str, namespace: str, pod_uid: str) -> dict[str, str]:
    return {LABEL_POD: name, LABEL_NAMESPACE: namespace, LABEL_POD_UID: pod_uid}


def namespace_options(host_network: bool) -> api.NamespaceOption:
    """Network on the node or the pod's own; pid per container, ipc per pod (the defaults)."""
    return api.NamespaceOption(network=api.NODE if host_network else api.POD, pid=api.CONTAINER, ipc=api.POD)


def pod_sandbox_config(
    name: str,
    namespace: str,
    pod_uid: str,
    log_directory: Path,
    host_network: bool,
    labels: Mapping[str, str] | None = None,
) -> api.PodSandboxConfig:
    config = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=pod_uid, attempt=0),
        log_directory=str(log_directory),
        labels={**(labels or {}), **pod_labels(name, namespace, pod_uid)},
        annotations={"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": time_rfc3339()},
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=pod_cgroup_parent(pod_uid),
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=namespace_options(host_network),
                seccomp=api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault),
            ),
        ),
    )
    if not host_network:
        config.hostname = name  # a host-network pod has the node's, and must not set one
    return config


def make_empty_dirs(pod_directory: Path, spec: ContainerSpec) -> list[Mount]:
    """The container's emptyDir volumes: directories of the pod, mode 0777 as the kubelet makes them."""
    mounts = []
    for container_path in spec.empty_dirs:
        volume_name = f"{spec.name}-{container_path.strip('/').replace('/', '-') or 'root'}"
        directory = pod_directory / "volumes" / "kubernetes.io~empty-dir" / volume_name
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777)
        mounts.append(Mount(str(directory), container_path, readonly=False))
    return mounts


def remove_pod_directories(*directories: Path) -> None:
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


def container_config(
    spec: ContainerSpec,
    image: str,
    sandbox: api.PodSandboxConfig,
    volumes: Sequence[Mount],
    uid: int,
    read_only_root: bool,
    seccomp: api.SecurityProfile,
) -> api.ContainerConfig:
    labels = dict(sandbox.labels) | {LABEL_CONTAINER: spec.name}
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=spec.name, attempt=0),
        image=api.ImageSpec(image=image, user_specified_image=spec.image),
        command=list(spec.command),
        args=list(spec.args),
        envs=[api.KeyValue(key=key, value=value.encode()) for key, value in spec.env.items()],
        mounts=[
            api.Mount(host_path=m.host_path, container_path=m.container_path, readonly=m.readonly)
            for m in [*spec.mounts, *volumes]
        ],
        labels=labels,
        annotations={
            "io.kubernetes.container.restartCount": "0",
            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "io.kubernetes.pod.terminationGracePeriod": "30",
        },
        log_path=f"{spec.name}/0.log",  # relative to the sandbox's log directory
        linux=api.LinuxContainerConfig(
            resources=api.LinuxContainerResources(
                cpu_shares=BURSTABLE_CPU_SHARES, oom_score_adj=BURSTABLE_OOM_SCORE_ADJ
            ),
            security_context=restricted_security_context(sandbox, uid, read_only_root, seccomp),
        ),
    )


def restricted_security_context(
    sandbox: api.PodSandboxConfig, uid: int, read_only_root: bool, seccomp: api.SecurityProfile
) -> api.LinuxContainerSecurityContext:
    return api.LinuxContainerSecurityContext(
        capabilities=api.Capability(drop_capabilities=["ALL"]),
        namespace_options=sandbox.linux.security_context.namespace_options,
        run_as_user=api.Int64Value(value=uid),
        run_as_group=api.Int64Value(value=uid),
        readonly_rootfs=read_only_root,
        no_new_privs=True,
        masked_paths=DEFAULT_MASKED_PATHS,
        readonly_paths=DEFAULT_READONLY_PATHS,
        seccomp=seccomp,
    )


def security_profile(seccomp: str | Path | None) -> api.SecurityProfile:
    """A container's seccompProfile: None (Unconfined), "RuntimeDefault" or a Localhost file."""
    if seccomp is None:
        return api.SecurityProfile(profile_type=api.SecurityProfile.Unconfined)
    if str(seccomp) == RUNTIME_DEFAULT:
        return api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault)
    path = Path(seccomp).resolve()
    if not path.is_file():
        raise InputError(seccomp, "no such seccomp profile")
    return api.SecurityProfile(profile_type=api.SecurityProfile.Localhost, localhost_ref=str(path))


def time_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ignore_not_found(call, *args) -> None:
    try:
        call(*args)
    except CriError as err:
        if err.code != "NOT_FOUND":
            raise


# --- the pod's cgroups ---


def cgroup_mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[Path]:
    """Where each cgroup hierarchy is mounted: the v2 one and, on hybrid hosts, every v1 one."""
    points = []
    for line in Path(mountinfo).read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            points.append(Path(before.split()[4]))
    return points


def pod_cgroups(cgroup_parent: str) -> list[Path]:
    """The pod's cgroup directory in each hierarchy where it exists."""
    return [
        point / cgroup_parent.lstrip("/")
        for point in cgroup_mount_points()
        if (point / cgroup_parent.lstrip("/")).is_dir()
    ]


def remove_pod_cgroups(cgroup_parent: str) -> None:
    """rmdir the pod's cgroups bottom-up once their processes are gone (the runtime removed
    the containers' own cgroups); InputError naming any that stays."""
    stuck = []
    for pod_cgroup in pod_cgroups(cgroup_parent):
        children = sorted((p for p in pod_cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for directory in [*children, pod_cgroup]:
            if not remove_cgroup(directory):
                stuck.append(str(directory))
    if stuck:
        raise InputError(None, f"pod cgroups still hold processes: {', '.join(stuck)}")


def remove_empty_qos_cgroups() -> None:
    """The node-level /kubepods cgroups, which a kubelet keeps for its life: a node of our own
    removes them when it closes, unless pods (another node's) are still in them."""
    for point in cgroup_mount_points():
        for level in ("kubepods/burstable", "kubepods/besteffort", "kubepods"):
            try:
                (point / level).rmdir()
            except OSError:
                pass


# --- a node of our own ---


class CriNode:
    """A private containerd with the CRI plugin, the pause and mini-NIM images imported, a pod
    network where the CNI plugins are installed (pod_network=False: none), and run_pod() on it.
    Use as a context manager; close() removes every pod it started, and the pod network."""

    def __init__(self, workdir: Path | None = None, pod_network: bool = True):
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="crinode-"))
        self.pause_image = images.pause_image(self.workdir)
        self.mininim_image = images.mininim_image(self.workdir)
        self.containerd = PrivateContainerd(self.pause_image, pod_network=pod_network)
        self.node_directory = self.containerd.base / "kubelet"  # the pods' volumes and logs
        self.pods: list[Pod] = []
        self.client: CriClient | None = None

    def start(self) -> CriNode:
        self.containerd.start()
        self.client = self.containerd.client()
        self.containerd.import_image(self.mininim_image)
        return self

    def run_pod(self, name: str, namespace: str, containers: Sequence[ContainerSpec], **options) -> Pod:
        pod = run_pod(self.client, name, namespace, containers, node_directory=self.node_directory, **options)
        self.pods.append(pod)
        return pod

    def close(self) -> None:
        try:
            for pod in self.pods:
                try:
                    pod.delete()
                except (InputError, CriError):
                    pass  # already gone, or the daemon is: stop() below cleans its directory
        finally:
            if self.client is not None:
                self.client.close()
            self.containerd.stop()
            remove_empty_qos_cgroups()
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> CriNode:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc) -> None:
        self.close()
