"""`tracer k8s harden`: a recorded profile applied to a manifest, nothing else touched."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from tracer.cli import main
from tracer.kube import pss
from tracer.kube.harden import plain
from tracer.kube.yaml_out import guess_indentation

K8S_VERSION = kubernetes_validate.latest_version()

NIM_DEPLOYMENT = textwrap.dedent("""\
    # NIM for LLMs, as deployed from the NGC quick start
    apiVersion: v1
    kind: Service
    metadata:
      name: nim-llm
      namespace: nim
    spec:
      selector:
        app: nim-llm
      ports:
        - name: http-openai
          port: 8000   # OpenAI-compatible API
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: nim-llm
      namespace: nim
      labels:
        app: nim-llm
    spec:
      replicas: 1
      selector:
        matchLabels:
          app: nim-llm
      template:
        metadata:
          labels:
            app: nim-llm
        spec:
          runtimeClassName: nvidia
          imagePullSecrets:
            - name: ngc-secret
          securityContext:   # the NIM image runs as uid 1000
            runAsUser: 1000
            runAsGroup: 1000
            fsGroup: 1000
          containers:
            - name: nim-llm
              image: "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3"
              env:
                - name: NGC_API_KEY
                  valueFrom:
                    secretKeyRef: {name: ngc-api, key: NGC_API_KEY}
                - name: NIM_CACHE_PATH
                  value: /opt/nim/.cache
              ports:
                - containerPort: 8000
                  name: http-openai
              resources:
                limits:
                  nvidia.com/gpu: 1   # one GPU per replica
              volumeMounts:
                - name: nim-cache
                  mountPath: /opt/nim/.cache
                - name: dshm
                  mountPath: /dev/shm
            - name: metrics-exporter
              image: "ghcr.io/example/exporter:2.0"
              ports:
                - containerPort: 9400
          volumes:
            - name: nim-cache
              persistentVolumeClaim:
                claimName: nim-cache
            - name: dshm
              emptyDir:
                medium: Memory   # NCCL needs a large /dev/shm
    """)

WORKLOAD_KINDS = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: pod}
    spec:
      containers: [{name: app, image: busybox}]
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: sts}
    spec:
      serviceName: sts
      selector: {matchLabels: {app: sts}}
      template:
        metadata: {labels: {app: sts}}
        spec:
          containers: [{name: app, image: busybox}]
    ---
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: ds}
    spec:
      selector: {matchLabels: {app: ds}}
      template:
        metadata: {labels: {app: ds}}
        spec:
          containers: [{name: app, image: busybox}]
    ---
    apiVersion: apps/v1
    kind: ReplicaSet
    metadata: {name: rs}
    spec:
      selector: {matchLabels: {app: rs}}
      template:
        metadata: {labels: {app: rs}}
        spec:
          containers: [{name: app, image: busybox}]
    ---
    apiVersion: v1
    kind: ReplicationController
    metadata: {name: rc}
    spec:
      selector: {app: rc}
      template:
        metadata: {labels: {app: rc}}
        spec:
          containers: [{name: app, image: busybox}]
    ---
    apiVersion: batch/v1
    kind: Job
    metadata: {name: job}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: app, image: busybox}]
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: cron}
    spec:
      schedule: "*/5 * * * *"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: OnFailure
              containers: [{name: app, image: busybox}]
    """)


def write_profile_dir(
    root: Path, name: str = "nim-llm", *, add=("CAP_NET_BIND_SERVICE",), recording: dict | None = None
) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    seccomp = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["futex", "read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }
    capabilities = {
        "add": list(add),
        "drop": ["ALL"],
        "evidence": {cap: [{"syscall": "bind", "outcome": "granted", "count": 1, "phase": "startup"}] for cap in add},
    }
    (directory / "seccomp.json").write_text(json.dumps(seccomp))
    (directory / "capabilities.json").write_text(json.dumps(capabilities))
    if recording is not None:
        (directory / "recording.json").write_text(json.dumps({"tool_version": "0.1.0", "traces": [], **recording}))
    return directory


NO_WRITES = {"rootfs_readonly": False, "writes_outside_volumes": False, "run_as_user": 1000}


@pytest.fixture
def profile(tmp_path) -> Path:
    return write_profile_dir(tmp_path / "profiles", recording=NO_WRITES)


def harden(tmp_path, manifest_text: str, profile: Path, *extra: str, out_name="out.yaml"):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text)
    out = tmp_path / out_name
    code = main(["k8s", "harden", str(manifest), "--profile", str(profile), "--out", str(out), *extra])
    return code, out


def load_all(text: str) -> list:
    return [plain(doc) for doc in YAML(typ="rt").load_all(text)]


def deployment_spec(docs: list) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]


def containers_by_name(docs: list) -> dict:
    return {c["name"]: c for c in deployment_spec(docs)["containers"]}


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(line == candidate for candidate in remaining) for line in needles)


def test_only_the_chosen_container_changes_and_comments_survive(tmp_path, profile, capsys):
    code, out = harden(tmp_path, NIM_DEPLOYMENT, profile, "--container", "nim-llm")
    text = out.read_text()
    before, after = load_all(NIM_DEPLOYMENT), load_all(text)

    # the hardening only inserts lines: every original line (comments, quoting, key
    # order, indentation) is still there, in order
    assert is_subsequence(NIM_DEPLOYMENT.splitlines(), text.splitlines())
    assert after[0] == before[0]  # the Service
    assert containers_by_name(after)["metrics-exporter"] == containers_by_name(before)["metrics-exporter"]
    hardened = containers_by_name(after)["nim-llm"]
    assert {k: v for k, v in hardened.items() if k != "securityContext"} == containers_by_name(before)["nim-llm"]
    assert deployment_spec(after)["securityContext"] == deployment_spec(before)["securityContext"]

    # the untouched sidecar keeps the pod from restricted: reported, exit 1, file written
    assert code == 1
    report = capsys.readouterr().out
    assert "Deployment/nim-llm: containers nim-llm: Pod Security baseline -> baseline" in report
    assert 'container "metrics-exporter"' in report


def test_nim_deployment_goes_from_baseline_to_restricted(tmp_path, profile, capsys):
    code, out = harden(tmp_path, NIM_DEPLOYMENT, profile)

    assert code == 0
    assert (
        "Deployment/nim-llm: containers nim-llm, metrics-exporter: Pod Security baseline -> restricted"
        in capsys.readouterr().out
    )
    spec = deployment_spec(load_all(out.read_text()))
    assert pss.strictest_level({}, deployment_spec(load_all(NIM_DEPLOYMENT)))[0] == "baseline"
    assert pss.strictest_level({}, spec)[0] == "restricted"


def test_container_security_context_carries_the_profile(tmp_path, profile):
    harden(tmp_path, NIM_DEPLOYMENT, profile, "--container", "nim-llm")
    context = containers_by_name(load_all((tmp_path / "out.yaml").read_text()))["nim-llm"]["securityContext"]

    assert context == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        "runAsNonRoot": True,  # runAsUser 1000 already set at pod level: not repeated
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "seccomp-tracer/nim-llm.json"},
    }


def test_localhost_path_option_and_no_capabilities_recorded(tmp_path):
    profile = write_profile_dir(tmp_path / "p", add=(), recording=NO_WRITES)
    harden(tmp_path, NIM_DEPLOYMENT, profile, "--localhost-path", "operator/nim/nim-llm.json")
    context = containers_by_name(load_all((tmp_path / "out.yaml").read_text()))["nim-llm"]["securityContext"]

    assert context["seccompProfile"] == {"type": "Localhost", "localhostProfile": "operator/nim/nim-llm.json"}
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_run_as_user_comes_from_the_recording_only_when_the_manifest_has_none(tmp_path, profile):
    code, out = harden(tmp_path, WORKLOAD_KINDS, profile)
    pod = load_all(out.read_text())[0]

    assert code == 0
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1000


def test_recording_as_root_is_warned_about(tmp_path, capsys):
    profile = write_profile_dir(tmp_path / "p", recording={**NO_WRITES, "run_as_user": 0})
    harden(tmp_path, WORKLOAD_KINDS, profile)
    pod = load_all((tmp_path / "out.yaml").read_text())[0]

    assert "runAsUser" not in pod["spec"]["containers"][0]["securityContext"]
    assert "the recording ran as root" in capsys.readouterr().err


@pytest.mark.parametrize(
    "recording, why",
    [
        ({"writes_outside_volumes": True, "rootfs_readonly": False}, "saw writes outside its volumes"),
        ({"writes_outside_volumes": None, "rootfs_readonly": None}, "does not say whether"),
        (None, "does not say whether"),  # no recording.json at all
    ],
)
def test_read_only_root_is_left_alone_when_writes_happened_or_are_unknown(tmp_path, capsys, recording, why):
    profile = write_profile_dir(tmp_path / "p", recording=recording)
    harden(tmp_path, NIM_DEPLOYMENT, profile, "--container", "nim-llm")
    context = containers_by_name(load_all((tmp_path / "out.yaml").read_text()))["nim-llm"]["securityContext"]

    assert "readOnlyRootFilesystem" not in context
    err = capsys.readouterr().err
    assert "readOnlyRootFilesystem left unset" in err and why in err


def test_read_only_root_when_the_recording_ran_read_only(tmp_path):
    profile = write_profile_dir(tmp_path / "p", recording={"writes_outside_volumes": None, "rootfs_readonly": True})
    harden(tmp_path, NIM_DEPLOYMENT, profile, "--container", "nim-llm")
    context = containers_by_name(load_all((tmp_path / "out.yaml").read_text()))["nim-llm"]["securityContext"]

    assert context["readOnlyRootFilesystem"] is True


def test_every_workload_kind_is_hardened_and_validates(tmp_path, profile, capsys):
    code, out = harden(tmp_path, WORKLOAD_KINDS, profile)
    docs = load_all(out.read_text())
    report = capsys.readouterr().out

    assert code == 0
    assert [doc["kind"] for doc in docs] == [
        "Pod",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
        "CronJob",
    ]
    for doc in docs:
        kind = doc["kind"]
        assert f"{kind}/{doc['metadata']['name']}: containers app: Pod Security baseline -> restricted" in report
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_nim_output_validates_against_the_kubernetes_schema(tmp_path, profile):
    harden(tmp_path, NIM_DEPLOYMENT, profile)
    docs = load_all((tmp_path / "out.yaml").read_text())
    assert [doc["kind"] for doc in docs] == ["Service", "Deployment"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubectl_style_indentless_sequences_are_kept(tmp_path, profile):
    kubectl_style = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: p
        spec:
          containers:
          - image: busybox
            name: app
            args:
            - sleep
            - "3600"
        """)
    harden(tmp_path, kubectl_style, profile)
    text = (tmp_path / "out.yaml").read_text()

    assert guess_indentation(kubectl_style) == (2, 0)
    assert is_subsequence(kubectl_style.splitlines(), text.splitlines())
    assert "      - ALL" in text  # new sequences follow the same style


def test_privileged_is_turned_off_with_a_warning(tmp_path, profile, capsys):
    privileged = WORKLOAD_KINDS.split("---")[0].replace(
        "{name: app, image: busybox}", "{name: app, image: busybox, securityContext: {privileged: true}}"
    )
    code, out = harden(tmp_path, privileged, profile)

    assert code == 0
    assert load_all(out.read_text())[0]["spec"]["containers"][0]["securityContext"]["privileged"] is False
    assert "privileged: true replaced by false" in capsys.readouterr().err


def _bad_json(directory: Path) -> None:
    (directory / "seccomp.json").write_text("{not json")


def _wrong_shape(directory: Path) -> None:
    (directory / "capabilities.json").write_text(json.dumps({"add": "CAP_CHOWN", "drop": ["ALL"]}))


def _missing_file(directory: Path) -> None:
    (directory / "capabilities.json").unlink()


@pytest.mark.parametrize(
    "damage, problem",
    [
        (_bad_json, "seccomp.json: not valid JSON"),
        (_wrong_shape, "capabilities.json: add: expected a list"),
        (_missing_file, "capabilities.json: no such file"),
    ],
)
def test_bad_profile_dir_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, damage, problem):
    profile = write_profile_dir(tmp_path / "p", recording=NO_WRITES)
    damage(profile)
    code, out = harden(tmp_path, NIM_DEPLOYMENT, profile)

    err = capsys.readouterr().err
    assert code == 2
    assert problem in err and err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()


def test_missing_profile_dir_exits_2(tmp_path, capsys):
    code, out = harden(tmp_path, NIM_DEPLOYMENT, tmp_path / "nowhere")

    assert code == 2 and not out.exists()
    assert "profile directory not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "manifest, problem",
    [
        (NIM_DEPLOYMENT, "no container named 'sidecar' in any pod template (containers: metrics-exporter, nim-llm)"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "no pod template found"),
        ("kind: Pod\nspec: [unclosed\n", "not valid YAML"),
    ],
)
def test_unusable_manifest_exits_2_and_writes_nothing(tmp_path, profile, capsys, manifest, problem):
    code, out = harden(tmp_path, manifest, profile, "--container", "sidecar")

    err = capsys.readouterr().err
    assert code == 2 and problem in err and err.count("\n") == 1
    assert not out.exists()


def test_comments_before_the_first_document_marker_and_flow_style_containers(tmp_path, profile):
    manifest = textwrap.dedent("""\
        # generated by helm template nim ./charts/nim
        ---  # Source: nim/templates/pod.yaml
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers: [{name: app, image: busybox}]
        """)
    code, out = harden(tmp_path, manifest, profile)
    text = out.read_text()

    assert code == 0
    assert text.startswith("# generated by helm template nim ./charts/nim\n---  # Source: nim/templates/pod.yaml\n")
    assert "  - name: app\n    image: busybox\n    securityContext:\n" in text  # block style now
    kubernetes_validate.validate(load_all(text)[0], K8S_VERSION, strict=True)


def recorded_from(container: str) -> dict:
    """recording.json as generate writes it for a trace of CONTAINER of a pod (format v2)."""
    return {
        **NO_WRITES,
        "traces": [
            {
                "source": "nim.trace.json",
                "target": {
                    "kind": "kubernetes-pod",
                    "name": "nim/nim-llm-0",
                    "pod": {"namespace": "nim", "name": "nim-llm-0"},
                    "container": {"name": container, "id": "abc"},
                },
            }
        ],
    }


def test_default_is_the_container_the_profile_was_recorded_from(tmp_path, capsys):
    profile = write_profile_dir(tmp_path / "profiles", recording=recorded_from("nim-llm"))
    code, out = harden(tmp_path, NIM_DEPLOYMENT, profile)
    before, after = load_all(NIM_DEPLOYMENT), load_all(out.read_text())

    assert containers_by_name(after)["metrics-exporter"] == containers_by_name(before)["metrics-exporter"]
    assert containers_by_name(after)["nim-llm"]["securityContext"]["seccompProfile"]["type"] == "Localhost"
    assert "Deployment/nim-llm: containers nim-llm: Pod Security" in capsys.readouterr().out
    assert code == 1  # the untouched sidecar keeps the pod from restricted


def test_other_containers_are_hardened_only_when_named(tmp_path, capsys):
    profile = write_profile_dir(tmp_path / "profiles", recording=recorded_from("nim-llm"))
    code, out = harden(tmp_path, NIM_DEPLOYMENT, profile, "--container", "metrics-exporter")
    after = load_all(out.read_text())

    assert (
        "securityContext" not in containers_by_name(after)["nim-llm"]
        or "seccompProfile" not in containers_by_name(after)["nim-llm"]["securityContext"]
    )
    assert containers_by_name(after)["metrics-exporter"]["securityContext"]["seccompProfile"]["type"] == "Localhost"


def test_a_recorded_container_the_manifest_lacks_hardens_every_app_container_and_says_so(tmp_path, capsys):
    profile = write_profile_dir(tmp_path / "profiles", recording=recorded_from("llm"))
    code, _ = harden(tmp_path, NIM_DEPLOYMENT, profile)
    captured = capsys.readouterr()

    assert code == 0 and "containers nim-llm, metrics-exporter" in captured.out
    assert "recorded from container 'llm', which no pod template here has" in captured.err
