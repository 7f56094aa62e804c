"""Pods on a real CRI runtime: containerd's CRI plugin driven as the kubelet drives it, with
images built here (tests/support/crinode.py, tracer/embedded/crinode/node.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import time

import pytest

from support.crinode import (
    SLEEPER,
    container_log,
    pod_footprint,
    runtime_knows,
    sandbox_pid,
    unique,
    wait_exited,
)
from support.live import require_live
from support.waiting import wait_for
from tracer.cgroups import cgroup_of_pid, cgroup_v2_root
from tracer.embedded.crinode import cni
from tracer.embedded.crinode.node import ContainerSpec, CriNode, cgroup_mount_points, mininim_container
from tracer.errors import InputError
from tracer.kube.cri import client as cri
from tracer.kube.cri.runtime.v1 import api_pb2 as api
from tracer.network.observe import free_port
from tracer.recorder.load import url_ready

pytestmark = pytest.mark.usefixtures("live")
POD_START_LIMIT_S = 30  # measured here: about 0.3 s to started, 0.5 s to ready (docs/cri-node.md)


def test_mininim_pod_answers_and_is_resolved_to_its_container_and_cgroup(cri_node, k8s_namespace):
    port = free_port()
    started_at = time.monotonic()
    pod = cri_node.run_pod(unique("mininim"), k8s_namespace, [mininim_container(port)])
    started_s = time.monotonic() - started_at
    wait_for(
        lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready"),
        POD_START_LIMIT_S,
        f"mini-NIM ready on port {port}\n{container_log(pod, 'nim')}",
    )
    ready_s = time.monotonic() - started_at
    print(f"pod started in {started_s:.2f} s, ready in {ready_s:.2f} s")

    resolved = cri.resolve_pod_container(k8s_namespace, pod.name, cri_endpoint=cri_node.containerd.endpoint)

    pid = pod.container_status("nim").pid
    server_cgroup = cgroup_of_pid(pid)
    assert (resolved.container_id, resolved.pod_uid) == (pod.container_id("nim"), pod.uid)
    assert resolved.cgroup_path == server_cgroup
    assert resolved.cgroup_id == os.stat(server_cgroup).st_ino
    # the kubelet's cgroupfs layout, as the resolver also finds it without a pid
    assert server_cgroup == cgroup_v2_root() / f"kubepods/burstable/pod{pod.uid}/{resolved.container_id}"
    assert "python3" in (f := open(f"/proc/{pid}/cmdline").read()) and "/opt/nim/server.py" in f
    assert "Uid:\t1000\t1000\t1000\t1000" in open(f"/proc/{pid}/status").read()
    assert "CapEff:\t0000000000000000" in open(f"/proc/{pid}/status").read()
    root = next(line for line in open(f"/proc/{pid}/mountinfo") if line.split()[4] == "/")
    assert "ro" in root.split()[5].split(",")  # read-only root
    assert ready_s < POD_START_LIMIT_S


def test_container_status_reports_the_image_by_tag_and_digest(cri_node, k8s_namespace):
    pod = cri_node.run_pod(
        unique("status"), k8s_namespace, [ContainerSpec("sleeper", cri_node.mininim_image.name, command=SLEEPER)]
    )
    image = cri_node.mininim_image

    status = pod.container_status("sleeper").status

    assert status.state == api.CONTAINER_RUNNING
    assert status.image.image == image.name
    assert status.image_ref == image.repo_digest == f"localhost/seccomp-tracer/mininim@{image.manifest_digest}"
    assert status.labels == {
        cri.LABEL_POD: pod.name,
        cri.LABEL_NAMESPACE: k8s_namespace,
        cri.LABEL_POD_UID: pod.uid,
        cri.LABEL_CONTAINER: "sleeper",
    }
    assert status.metadata.name == "sleeper" and status.metadata.attempt == 0
    found = pod.client.image_status(image.name)
    assert found.id == image.config_digest
    assert list(found.repo_tags) == [image.name] and list(found.repo_digests) == [image.repo_digest]
    assert found.uid.value == 1000  # the image's own User, 1000:1000
    assert pod.client.image_status(image.repo_digest).id == image.config_digest
    assert pod.client.image_status("localhost/seccomp-tracer/absent:1") is None
    listed = {i.id: list(i.repo_tags) for i in pod.client.list_images()}
    assert listed == {
        image.config_digest: [image.name],
        cri_node.pause_image.config_digest: [cri_node.pause_image.name],
    }


def test_pod_sandbox_status_and_listing(cri_node, k8s_namespace):
    pod = cri_node.run_pod(
        unique("sandbox"), k8s_namespace, [ContainerSpec("sleeper", cri_node.mininim_image.name, command=SLEEPER)]
    )
    client = pod.client

    status = client.pod_sandbox_status(pod.sandbox_id).status

    assert status.state == api.SANDBOX_READY
    assert (status.metadata.name, status.metadata.namespace, status.metadata.uid) == (pod.name, k8s_namespace, pod.uid)
    assert status.labels[cri.LABEL_POD_UID] == pod.uid
    assert status.linux.namespaces.options.network == api.NODE
    pause = open(f"/proc/{sandbox_pid(pod)}/cmdline").read()
    assert pause == "/pause\0"
    assert [s.id for s in client.list_pod_sandbox({cri.LABEL_POD_UID: pod.uid})] == [pod.sandbox_id]
    assert client.pod_sandbox_uid(pod.sandbox_id) == pod.uid
    assert [c.id for c in client.list_containers(sandbox_id=pod.sandbox_id)] == [pod.container_id("sleeper")]

    pod.stop()

    assert client.pod_sandbox_status(pod.sandbox_id).status.state == api.SANDBOX_NOTREADY
    assert client.container_status(pod.container_id()).status.state == api.CONTAINER_EXITED
    assert client.list_containers(sandbox_id=pod.sandbox_id, running_only=True) == []


MKDIR_PROBE = (
    "import os, sys\n"
    "try:\n    os.mkdir('/tmp/probe')\nexcept OSError as err:\n"
    "    print('mkdir:', err.strerror, flush=True)\n    sys.exit(100 + err.errno)\n"
    "print('mkdir: done', flush=True)\n"
)


def test_localhost_seccomp_profile_is_enforced_in_the_container(cri_node, k8s_namespace, tmp_path):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
            }
        )
    )
    probe = ContainerSpec("probe", cri_node.mininim_image.name, command=("/usr/bin/python3", "-I", "-c", MKDIR_PROBE))

    confined = cri_node.run_pod(unique("confined"), k8s_namespace, [probe], seccomp=profile)
    unconfined = cri_node.run_pod(unique("unconfined"), k8s_namespace, [probe])

    assert wait_exited(confined, "probe").exit_code == 100 + 1, container_log(confined, "probe")  # EPERM
    assert "mkdir: Operation not permitted" in container_log(confined, "probe")
    assert wait_exited(unconfined, "probe").exit_code == 0, container_log(unconfined, "probe")
    assert "mkdir: done" in container_log(unconfined, "probe")


def test_a_missing_seccomp_profile_is_refused_before_any_call(cri_node, k8s_namespace, tmp_path):
    with pytest.raises(InputError, match="no such seccomp profile"):
        cri_node.run_pod(
            unique("x"),
            k8s_namespace,
            [ContainerSpec("c", cri_node.mininim_image.name)],
            seccomp=tmp_path / "absent.json",
        )
    assert cri_node.client.list_pod_sandbox({cri.LABEL_NAMESPACE: k8s_namespace}) == []


def test_stop_and_remove_leave_no_container_sandbox_cgroup_mount_or_process(cri_node, k8s_namespace):
    port = free_port()
    pod = cri_node.run_pod(
        unique("gone"),
        k8s_namespace,
        [mininim_container(port), ContainerSpec("sidecar", cri_node.mininim_image.name, command=SLEEPER)],
    )
    wait_for(lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready"), POD_START_LIMIT_S, "mini-NIM ready")
    before = pod_footprint(cri_node, pod)
    assert len(before["cgroups"]) == len(cgroup_mount_points())  # v2 and, on hybrid hosts, each v1 one
    assert len([line for line in before["mounts"] if "/rootfs " in line]) == 3  # sandbox and 2 containers
    commands = " ".join(before["processes"])
    assert all(word in commands for word in ("/pause", "server.py", "sleep infinity", "containerd-shim"))
    assert len(before["runc state"]) == 3 and len(before["directories"]) == 2

    pod.stop()
    assert not url_ready(f"http://127.0.0.1:{port}/v1/health/ready")
    pod.remove()

    assert runtime_knows(pod) == []
    assert pod_footprint(cri_node, pod) == {
        "cgroups": [],
        "mounts": [],
        "runc state": [],
        "processes": [],
        "directories": [],
    }


def test_the_resolver_chooses_pods_and_containers_as_crictl_does(cri_node, k8s_namespace):
    image = cri_node.mininim_image.name
    first = cri_node.run_pod(
        "nim-llm-0",
        k8s_namespace,
        [ContainerSpec("nim", image, command=SLEEPER), ContainerSpec("exporter", image, command=SLEEPER)],
    )
    second = cri_node.run_pod("nim-llm-1", k8s_namespace, [ContainerSpec("nim", image, command=SLEEPER)])
    endpoint = cri_node.containerd.endpoint

    def resolve(pod, container=None):
        return cri.resolve_pod_container(k8s_namespace, pod, container, cri_endpoint=endpoint).container_id

    assert resolve("nim-llm-0", "exporter") == first.container_id("exporter")
    assert resolve("nim-llm-1") == second.container_id("nim")
    assert resolve(cri.ANY_POD, "exporter") == first.container_id("exporter")  # the DaemonSet's "*"
    for pod, container, problem in [
        ("nim-llm-0", None, "pod .*/nim-llm-0 runs several containers (exporter, nim): choose one with --container"),
        ("nim-llm-9", None, "no running container for pod .*/nim-llm-9 on this node"),
        (cri.ANY_POD, "nim", r"matches several pods on this node (nim-llm-0, nim-llm-1): name one"),
    ]:
        with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            resolve(pod, container)

    # a container without the pod uid label (an older kubelet's): the uid comes from its sandbox
    legacy = api.ContainerConfig()
    legacy.CopyFrom(first.configs["exporter"])
    legacy.metadata.name = legacy.labels[cri.LABEL_CONTAINER] = "legacy"
    del legacy.labels[cri.LABEL_POD_UID]
    first.start_container(legacy)
    resolved = cri.resolve_pod_container(k8s_namespace, "nim-llm-0", "legacy", cri_endpoint=endpoint)
    assert (resolved.container_id, resolved.pod_uid) == (first.container_id("legacy"), first.uid)

    restarted = second.restart("nim")  # the kubelet's restart: attempt 1, attempt 0 stays exited

    assert resolve("nim-llm-1") == restarted != second.exited[0]
    assert second.container_status("nim").status.metadata.attempt == 1
    assert pod_state(second, second.exited[0]) == api.CONTAINER_EXITED


def pod_state(pod, container_id):
    return pod.client.container_status(container_id).status.state


def test_a_pod_network_is_refused_while_the_runtime_reports_it_not_ready(live, k8s_namespace):
    """A node without CNI: as the kubelet, run_pod starts no pod-network pod, and leaves nothing
    (containerd would create the sandbox and its netns, fail, and be unable to stop it)."""
    with CriNode(pod_network=False) as cri_node:
        ready = {c.type: c.status for c in cri_node.client.status().conditions}
        assert ready == {"RuntimeReady": True, "NetworkReady": False}
        netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()

        with pytest.raises(InputError, match="network is not ready: NetworkReady=false reason:NetworkPluginNotReady"):
            cri_node.run_pod("own-network", k8s_namespace, [mininim_container(free_port())], host_network=False)

        assert cri_node.client.list_pod_sandbox({cri.LABEL_NAMESPACE: k8s_namespace}) == []
        assert (set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()) == netns_before
        assert list((cri_node.node_directory / "logs").glob(f"{k8s_namespace}_*")) == []


def test_a_pod_network_pod_has_its_own_address_and_leaves_nothing(live, k8s_namespace):
    """With the CNI plugins: a pod gets its own namespace and an address on the node's bridge;
    the node's close removes the namespace, the bridge and the addresses handed out."""
    if cni.plugin_directory() is None:
        require_live("the CNI plugins (containernetworking-plugins) are not installed")
    with CriNode() as cri_node:
        network = cri_node.containerd.pod_network
        assert {c.type: c.status for c in cri_node.client.status().conditions} == {
            "RuntimeReady": True,
            "NetworkReady": True,
        }
        port = 8000  # the pod's own port space
        pod = cri_node.run_pod(
            "own-network", k8s_namespace, [mininim_container(port, host="0.0.0.0")], host_network=False
        )
        netns = pod.network_namespace()
        assert ipaddress.ip_address(pod.ip) in network.subnet and netns in os.listdir("/run/netns")
        wait_for(lambda: url_ready(f"http://127.0.0.1:{port}/v1/health/ready", netns), 30, "mini-NIM ready")
        assert network.bridge in os.listdir("/sys/class/net")
    assert netns not in os.listdir("/run/netns")
    assert network.bridge not in os.listdir("/sys/class/net")
