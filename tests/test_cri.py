"""Finding a pod's container through CRI, and its cgroup v2 directory and id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from live import require_live
from tracer.errors import InputError
from tracer import cgroups
from tracer.kube.cri import cgroup_path, wire
from tracer.kube.cri import client as cri

POD_UID = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
NIM_ID = "3e5f" + "a" * 60

# --- protobuf wire format, checked against bytes worked out by hand from the spec ----


def test_varints_encode_and_decode_as_protobuf_does():
    assert wire.encode_varint(1) == b"\x01"
    assert wire.encode_varint(300) == bytes.fromhex("ac02")
    assert wire.encode_varint(-1) == bytes.fromhex("ffffffffffffffffff01")  # int64 -1
    assert wire.decode_varint(bytes.fromhex("ac02"), 0) == (300, 2)
    with pytest.raises(ValueError):
        wire.decode_varint(bytes.fromhex("ac"), 0)


def test_container_status_request_bytes():
    # ContainerStatusRequest{container_id: "abc" (1, string), verbose: true (2, bool)}
    request = wire.encode_string(1, "abc") + wire.encode_varint_field(2, 1)
    assert request == bytes.fromhex("0a03616263" "1001")


def test_list_containers_request_bytes():
    # ListContainersRequest{filter (1): ContainerFilter{
    #   label_selector (4): {"io.kubernetes.pod.name": "p"}, state (2): {state (1): RUNNING = 1}}}
    label = b"io.kubernetes.pod.name"
    entry = b"\x0a\x16" + label + b"\x12\x01p"           # map entry {key = 1, value = 2}
    container_filter = b"\x22\x1b" + entry + b"\x12\x02\x08\x01"
    expected = b"\x0a\x21" + container_filter

    filter_bytes = wire.encode_map(4, {"io.kubernetes.pod.name": "p"}) \
        + wire.encode_message(2, wire.encode_varint_field(1, 1))
    assert wire.encode_message(1, filter_bytes) == expected


def test_container_message_decodes_and_skips_unknown_fields():
    container = bytes.fromhex(
        "0a026331"            # id = "c1"
        "12027331"            # pod_sandbox_id = "s1"
        "1a050a036e696d"      # metadata = {name = "nim"}
        "79" + "00" * 8 +     # field 15, fixed64: not ours, skipped
        "3001"                # state = CONTAINER_RUNNING
        "38ac02"              # created_at = 300
        "42060a016b120176"    # labels = {"k": "v"}
    )
    decoded = cri._container(wire.Fields(container))
    assert decoded == cri.CriContainer("c1", "s1", "nim", 300, {"k": "v"})


# --- a CRI runtime on a unix socket, answering like containerd ------------------------


@dataclass
class FakeContainer:
    id: str
    pod: str
    name: str
    namespace: str = "nim"
    pod_uid: str | None = POD_UID
    sandbox: str = "sandbox-1"
    state: int = cri.CONTAINER_RUNNING
    created_at: int = 1
    info: dict = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        labels = {cri.LABEL_NAMESPACE: self.namespace, cri.LABEL_POD: self.pod,
                  cri.LABEL_CONTAINER: self.name}
        if self.pod_uid:
            labels[cri.LABEL_POD_UID] = self.pod_uid
        return labels

    def encode(self) -> bytes:
        return (wire.encode_string(1, self.id) + wire.encode_string(2, self.sandbox)
                + wire.encode_message(3, wire.encode_string(1, self.name))
                + wire.encode_varint_field(6, self.state) + wire.encode_varint_field(7, self.created_at)
                + wire.encode_map(8, self.labels()))


class FakeRuntime:
    def __init__(self, containers: list[FakeContainer], sandbox_uids: dict[str, str] | None = None):
        self.containers = containers
        self.sandbox_uids = sandbox_uids or {}
        self.filters: list[tuple[dict, int | None]] = []

    def list_containers(self, request: bytes, context) -> bytes:
        container_filter = wire.Fields(request).message(1)
        selector = container_filter.map(4)
        state = container_filter.message(2)
        wanted_state = state.varint(1) if state else None
        self.filters.append((selector, wanted_state))
        found = [c for c in self.containers
                 if selector.items() <= c.labels().items() and wanted_state in (None, c.state)]
        return b"".join(wire.encode_message(1, c.encode()) for c in found)

    def container_status(self, request: bytes, context) -> bytes:
        fields = wire.Fields(request)
        assert fields.varint(2) == 1, "resolution needs the verbose info"
        container = next((c for c in self.containers if c.id == fields.string(1)), None)
        if container is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such container")
        status = wire.encode_string(1, container.id)
        return wire.encode_message(1, status) + wire.encode_map(2, {"info": json.dumps(container.info)})

    def list_pod_sandbox(self, request: bytes, context) -> bytes:
        wanted = wire.Fields(request).message(1).string(1)
        uid = self.sandbox_uids.get(wanted)
        if uid is None:
            return b""
        metadata = wire.encode_string(1, "pod") + wire.encode_string(2, uid) + wire.encode_string(3, "nim")
        return wire.encode_message(1, wire.encode_string(1, wanted) + wire.encode_message(2, metadata))


@pytest.fixture
def socket_dir():
    directory = tempfile.mkdtemp(prefix="cri-", dir="/tmp")  # unix socket paths are short
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def serve(socket_dir):
    servers = []

    def start(runtime: FakeRuntime) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handlers = {
            "ListContainers": grpc.unary_unary_rpc_method_handler(runtime.list_containers),
            "ContainerStatus": grpc.unary_unary_rpc_method_handler(runtime.container_status),
            "ListPodSandbox": grpc.unary_unary_rpc_method_handler(runtime.list_pod_sandbox),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("runtime.v1.RuntimeService", handlers),))
        endpoint = f"unix://{socket_dir}/containerd.sock"
        server.add_insecure_port(endpoint)
        server.start()
        servers.append(server)
        return endpoint

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture
def cgroup_tree(tmp_path, monkeypatch) -> Path:
    """A scratch directory standing in for the cgroup2 mount (ids are inode numbers)."""
    monkeypatch.setattr(cgroup_path, "cgroup_v2_root", lambda: tmp_path)
    return tmp_path


SYSTEMD_BURSTABLE = (f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                     f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{NIM_ID}.scope")


def systemd_info(container_id: str = NIM_ID) -> dict:
    cgroups_path = f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice:cri-containerd:{container_id}"
    return {"pid": 0, "runtimeSpec": {"linux": {"cgroupsPath": cgroups_path}}}


def test_resolves_the_container_through_cri_and_its_oci_cgroups_path(serve, cgroup_tree):
    runtime = FakeRuntime([FakeContainer(NIM_ID, "nim-llm-0", "nim-llm", info=systemd_info()),
                           FakeContainer("b" * 64, "nim-llm-0", "metrics-exporter"),
                           FakeContainer("c" * 64, "other", "nim-llm")])
    endpoint = serve(runtime)
    (cgroup_tree / SYSTEMD_BURSTABLE).mkdir(parents=True)

    resolved = cri.resolve_pod_container("nim", "nim-llm-0", "nim-llm", cri_endpoint=endpoint)

    assert resolved == cri.ResolvedContainer(NIM_ID, POD_UID, cgroup_tree / SYSTEMD_BURSTABLE,
                                             (cgroup_tree / SYSTEMD_BURSTABLE).stat().st_ino)
    # asked as crictl does: by the kubelet's labels, running containers only
    assert runtime.filters == [({cri.LABEL_NAMESPACE: "nim", cri.LABEL_POD: "nim-llm-0",
                                 cri.LABEL_CONTAINER: "nim-llm"}, cri.CONTAINER_RUNNING)]


def test_pid_from_the_verbose_info_places_the_container_by_its_own_cgroup(serve):
    own_cgroup = cgroups.cgroup_of_pid(os.getpid())
    if own_cgroup is None:
        require_live("this process's cgroup v2 path is outside its cgroup namespace")
    runtime = FakeRuntime([FakeContainer(NIM_ID, "nim-llm-0", "nim-llm", info={"pid": os.getpid()})])

    resolved = cri.resolve_pod_container("nim", "nim-llm-0", cri_endpoint=serve(runtime))

    assert resolved.cgroup_path == own_cgroup
    assert resolved.cgroup_id == os.stat(own_cgroup).st_ino


def test_pod_uid_comes_from_the_sandbox_when_the_container_has_no_uid_label(serve, cgroup_tree):
    runtime = FakeRuntime([FakeContainer(NIM_ID, "nim-llm-0", "nim-llm", pod_uid=None, sandbox="sb-9")],
                          sandbox_uids={"sb-9": POD_UID})
    cgroupfs = cgroup_tree / f"kubepods/besteffort/pod{POD_UID}/{NIM_ID}"
    cgroupfs.mkdir(parents=True)

    resolved = cri.resolve_pod_container("nim", "nim-llm-0", cri_endpoint=serve(runtime))

    assert (resolved.pod_uid, resolved.cgroup_path) == (POD_UID, cgroupfs)


def test_the_latest_restart_is_chosen(serve, cgroup_tree):
    runtime = FakeRuntime([FakeContainer("a" * 64, "p", "nim-llm", created_at=5),
                           FakeContainer(NIM_ID, "p", "nim-llm", created_at=9),
                           FakeContainer("d" * 64, "p", "nim-llm", created_at=99, state=2)])  # exited
    (cgroup_tree / SYSTEMD_BURSTABLE).mkdir(parents=True)

    assert cri.resolve_pod_container("nim", "p", cri_endpoint=serve(runtime)).container_id == NIM_ID


def test_any_pod_of_the_namespace_for_the_daemonset(serve, cgroup_tree):
    runtime = FakeRuntime([FakeContainer(NIM_ID, "nim-llm-7d9f-x2k", "nim-llm")])
    (cgroup_tree / SYSTEMD_BURSTABLE).mkdir(parents=True)

    resolved = cri.resolve_pod_container("nim", cri.ANY_POD, "nim-llm", cri_endpoint=serve(runtime))

    assert resolved.container_id == NIM_ID
    assert runtime.filters[0][0] == {cri.LABEL_NAMESPACE: "nim", cri.LABEL_CONTAINER: "nim-llm"}


@pytest.mark.parametrize("containers, pod, container, problem", [
    ([FakeContainer(NIM_ID, "p", "nim-llm"), FakeContainer("b" * 64, "p", "exporter")], "p", None,
     "runs several containers (exporter, nim-llm): choose one with --container"),
    ([FakeContainer(NIM_ID, "p", "nim-llm")], "q", None, "no running container for pod nim/q on this node"),
    ([FakeContainer(NIM_ID, "p1", "nim-llm"), FakeContainer("b" * 64, "p2", "nim-llm")], "*", "nim-llm",
     "matches several pods on this node (p1, p2)"),
])
def test_ambiguous_or_missing_container_is_an_input_error(serve, containers, pod, container, problem):
    endpoint = serve(FakeRuntime(containers))
    with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        cri.resolve_pod_container("nim", pod, container, cri_endpoint=endpoint)


def test_no_cgroup_found_names_what_was_tried(serve, cgroup_tree):
    runtime = FakeRuntime([FakeContainer(NIM_ID, "p", "nim-llm")])
    with pytest.raises(InputError, match=r"no cgroup v2 directory found .* \(tried 12 kubelet cgroup layouts"):
        cri.resolve_pod_container("nim", "p", cri_endpoint=serve(runtime))


def test_unreachable_runtime_is_an_input_error(socket_dir):
    endpoint = f"unix://{socket_dir}/absent.sock"
    with pytest.raises(InputError, match="CRI ListContainers failed: UNAVAILABLE") as caught:
        cri.resolve_pod_container("nim", "p", cri_endpoint=endpoint)
    assert caught.value.source == endpoint


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


def test_record_kubernetes_pod_finds_and_records_the_container(serve, tmp_path):
    """`tracer record --kubernetes-pod` end to end: CRI lookup, cgroup, BPF, trace."""
    from conftest import live_problem, tracer_cli

    from tracer import cgroups
    from tracer.trace import load_trace

    problem = live_problem()
    if problem:
        require_live(problem)
    cgroup = cgroups.make_cgroup("pod")
    expected_id = cgroups.cgroup_id(cgroup)
    procs = str(cgroup / "cgroup.procs")
    workload = subprocess.Popen(["/bin/sh", "-c", "while :; do cat /proc/self/stat >/dev/null; sleep 0.05; done"],
                                preexec_fn=lambda: open(procs, "w").write("0"))
    try:
        endpoint = serve(FakeRuntime([FakeContainer(NIM_ID, "nim-llm-0", "nim-llm", info={"pid": workload.pid})]))
        trace_path = tmp_path / "pod.trace.json"
        done = tracer_cli("record", "--kubernetes-pod", "nim/nim-llm-0", "--container", "nim-llm", "--duration", "1",
                          "--out", str(trace_path), env={**os.environ, "CONTAINER_RUNTIME_ENDPOINT": endpoint})
        assert done.returncode == 0, done.stderr
    finally:
        workload.kill()
        workload.wait()
        cgroups.remove_cgroup(cgroup)
    trace = load_trace(trace_path)
    target = trace.metadata["target"]
    assert target["kind"] == "kubernetes-pod" and target["container_id"] == NIM_ID
    assert target["cgroup_id"] == expected_id
    assert trace.calls_by_nr().sum() > 50
