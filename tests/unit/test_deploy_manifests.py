"""deploy/: the fleet recorder's manifests validate and carry what the recorder needs."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from support.paths import REPO
from tracer.cli import main
from tracer.kube.cri import client as cri
from tracer.kube.harden import plain
from tracer.recorder.pod import PodSelector

DEPLOY = REPO / "deploy"
K8S_VERSION = kubernetes_validate.latest_version()


def documents(name: str) -> list[dict]:
    return [plain(doc) for doc in YAML(typ="rt").load_all((DEPLOY / name).read_text()) if doc]


@pytest.fixture(scope="module")
def daemonset() -> dict:
    (daemonset,) = documents("daemonset.yaml")
    return daemonset


def recorder(daemonset: dict) -> dict:
    (container,) = daemonset["spec"]["template"]["spec"]["initContainers"]
    assert container["name"] == "recorder"
    return container


def idle(daemonset: dict) -> dict:
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "idle"
    return container


# Measured: a recording with exactly these, and nothing else, works (tests/live/test_deploy_recorder.py).
RECORDER_CAPABILITIES = ["BPF", "PERFMON"]
# Kubernetes label syntax: an optional DNS-subdomain prefix, a name of up to 63 characters.
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DIGEST_REFERENCE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$")


@pytest.mark.parametrize(
    "name, first_kind",
    [("namespace.yaml", "Namespace"), ("rbac.yaml", "ServiceAccount"), ("daemonset.yaml", "DaemonSet")],
)
def test_manifest_validates_against_the_kubernetes_schema(name, first_kind):
    docs = documents(name)
    assert docs and docs[0]["kind"] == first_kind
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_namespace_lets_only_the_recorder_namespace_run_privileged():
    (namespace,) = documents("namespace.yaml")
    assert namespace["metadata"]["name"] == "seccomp-tracer"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_rbac_is_a_service_account_without_api_access(daemonset):
    objects = documents("rbac.yaml")
    assert [o["kind"] for o in objects] == ["ServiceAccount"]  # no Role, no binding
    (account,) = objects
    assert account["automountServiceAccountToken"] is False
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["namespace"] == daemonset["metadata"]["namespace"] == "seccomp-tracer"
    assert pod["automountServiceAccountToken"] is False


def test_daemonset_runs_on_gpu_nodes_with_least_privilege(daemonset):
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert not pod.get("hostPID") and not pod.get("hostNetwork") and not pod.get("hostIPC")
    context = recorder(daemonset)["securityContext"]
    assert context["privileged"] is False and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"], "add": RECORDER_CAPABILITIES}
    assert context["runAsUser"] == 0  # root's files, no DAC override
    idle_context = idle(daemonset)["securityContext"]
    assert idle_context["capabilities"] == {"drop": ["ALL"]} and idle_context["runAsNonRoot"] is True
    assert idle_context["readOnlyRootFilesystem"] is True and idle_context["allowPrivilegeEscalation"] is False


def test_daemonset_mounts_the_host_paths_the_recorder_reads(daemonset):
    pod = daemonset["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in recorder(daemonset)["volumeMounts"]}
    mounted = {host_paths[name]["path"]: mount["mountPath"] for name, mount in mounts.items() if name in host_paths}

    for path in ("/sys/kernel/tracing", "/sys/fs/cgroup", "/lib/modules", "/usr/src", "/var/lib/seccomp-tracer/traces"):
        assert mounted[path] == path
    # the socket's directory, which outlives a containerd restart; a missing one is a Directory error
    socket_dir = str(Path(cri.DEFAULT_CRI_ENDPOINTS[0].removeprefix("unix://")).parent)
    assert mounted[socket_dir] == socket_dir
    assert {"path": socket_dir, "type": "Directory"} in host_paths.values()
    assert not any(v.get("type") == "Socket" for v in host_paths.values())
    writable = {name for name, mount in mounts.items() if not mount.get("readOnly")}
    assert writable == {"traces"}
    assert [m["name"] for m in idle(daemonset)["volumeMounts"]] == ["traces"]
    assert idle(daemonset)["volumeMounts"][0]["readOnly"] is True


def test_recorder_arms_first_and_records_the_next_pod_into_a_per_node_directory(daemonset):
    container = recorder(daemonset)
    env = {e["name"]: e for e in container["env"]}
    script = container["args"][0]

    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    selector = PodSelector.labelled(env["TARGET_SELECTOR"]["value"])  # what the recorder parses
    assert LABEL_KEY.match(selector.label[0]) and LABEL_VALUE.match(selector.label[1])
    assert env["CONTAINER_RUNTIME_ENDPOINT"]["value"] == cri.DEFAULT_CRI_ENDPOINTS[0]
    traces = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "traces")
    assert env["TRACES_DIR"]["value"] == traces
    # tini: SIGTERM reaches the recorder, and exit 1 (trace written) is no failure to retry
    assert container["command"] == ["tini", "-e", "1", "--", "/bin/sh", "-c"]
    # armed before the pod exists: the next new pod with the label, from its first syscall
    assert script.lstrip().startswith('exec tracer record --kubernetes-selector "$TARGET_SELECTOR"')
    assert re.search(r'--out "\$TRACES_DIR/\$NODE_NAME-[^"]*/"', script)  # a directory: a trace per container run
    assert idle(daemonset)["command"] == ["sleep", "infinity"]


def test_the_image_is_referenced_by_digest(daemonset):
    images = {recorder(daemonset)["image"], idle(daemonset)["image"]}
    assert len(images) == 1
    assert DIGEST_REFERENCE.match(images.pop())
    assert not DIGEST_REFERENCE.match("registry.example.com/seccomp-tracer:0.1.0")
    assert not DIGEST_REFERENCE.match("registry.example.com/seccomp-tracer@sha256:abc")


def test_containerfile_installs_what_the_recorder_imports():
    containerfile = (DEPLOY / "Containerfile").read_text()
    for package in ("python3-bpfcc", "bpfcc-tools", "libseccomp2", "tini"):
        assert package in containerfile
    for copied in re.findall(r"^COPY (.+) \S+$", containerfile, re.MULTILINE):
        for source in copied.split():
            assert (DEPLOY.parent / source).exists(), f"Containerfile copies missing {source}"


def test_tracer_k8s_namespace_output_validates_and_matches_deploy(tmp_path):
    out = tmp_path / "namespace.yaml"
    assert main(["k8s", "namespace", "seccomp-tracer", "--enforce", "privileged", "--out", str(out)]) == 0
    (generated,) = [plain(doc) for doc in YAML(typ="rt").load_all(out.read_text()) if doc]
    kubernetes_validate.validate(generated, K8S_VERSION, strict=True)
    (shipped,) = documents("namespace.yaml")
    assert (
        generated["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == shipped["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    )
