"""Pod Security evaluator, manifest loading and the `tracer pss` commands."""

from __future__ import annotations

import json
import textwrap

import pytest

from tracer.cli import main
from tracer.errors import InputError
from tracer.kube import pss
from tracer.kube.manifests import load_manifests, load_objects

RESTRICTED_CONTAINER = {
    "name": "app",
    "image": "registry.k8s.io/pause",
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}
RESTRICTED_SPEC = {
    "containers": [RESTRICTED_CONTAINER],
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
}


def spec_with(**pod_fields) -> dict:
    return {**RESTRICTED_SPEC, **pod_fields}


def container_with(**security_context) -> dict:
    return {**RESTRICTED_CONTAINER, "securityContext": {**RESTRICTED_CONTAINER["securityContext"], **security_context}}


# --- evaluator -----------------------------------------------------------------------


def test_a_hardened_pod_meets_restricted_at_every_version():
    for minor in range(0, pss.NEWEST_MINOR + 3):
        assert pss.evaluate({}, RESTRICTED_SPEC, "restricted", f"v1.{minor}").allowed


def test_message_aggregates_reasons_and_details_in_upstream_order():
    spec = {
        "hostNetwork": True,
        "containers": [
            {"name": "a", "securityContext": {"privileged": True}},
            {"name": "b", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        ],
    }
    evaluation = pss.evaluate({}, spec, "baseline", "v1.30")
    assert not evaluation.allowed
    assert evaluation.version == "v1.30"
    assert [v.check for v in evaluation.violations] == ["hostNamespaces", "hostPorts", "privileged"]
    assert evaluation.message == (
        'violates PodSecurity "baseline:v1.30": host namespaces (hostNetwork=true), '
        'hostPort (container "b" uses hostPort 8080), '
        'privileged (container "a" must not set securityContext.privileged=true)'
    )


def test_restricted_runs_baseline_checks_first_and_replaces_overridden_ones():
    spec = {
        "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
    }
    checks = [v.check for v in pss.evaluate({}, spec, "restricted", "latest").violations]
    # capabilities_baseline and hostPathVolumes are overridden by their restricted counterparts.
    assert checks == [
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "restrictedVolumes",
        "runAsNonRoot",
        "seccompProfile_restricted",
    ]
    message = pss.evaluate({}, spec, "restricted", "latest").message
    assert 'restricted volume types (volume "h" uses restricted volume type "hostPath")' in message
    assert (
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]; '
        'container "c" must not include "NET_RAW" in securityContext.capabilities.add)'
    ) in message


def test_privileged_allows_everything():
    evaluation = pss.evaluate(
        {},
        {"hostPID": True, "containers": [{"name": "x", "securityContext": {"privileged": True}}]},
        "privileged",
        "latest",
    )
    assert evaluation.allowed and evaluation.message == "" and evaluation.violations == []


@pytest.mark.parametrize("version, allowed", [("v1.26", False), ("v1.27", True)])
def test_sysctl_allow_list_grows_with_the_policy_version(version, allowed):
    spec = spec_with(
        securityContext={
            **RESTRICTED_SPEC["securityContext"],
            "sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "1024"}],
        }
    )
    assert pss.evaluate({}, spec, "baseline", version).allowed is allowed


def test_seccomp_is_checked_by_annotation_before_v1_19_and_by_field_after():
    meta = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    old = pss.evaluate(meta, {}, "baseline", "v1.18")
    assert old.message == (
        'violates PodSecurity "baseline:v1.18": seccompProfile '
        '(forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    )
    assert pss.evaluate(meta, {}, "baseline", "v1.19").allowed
    field = {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}
    assert pss.evaluate({}, field, "baseline", "v1.18").allowed
    assert not pss.evaluate({}, field, "baseline", "v1.19").allowed


def test_restricted_seccomp_starts_at_v1_19_and_run_as_user_at_v1_23():
    no_seccomp = spec_with(securityContext={"runAsNonRoot": True, "runAsUser": 0})
    assert [v.check for v in pss.evaluate({}, no_seccomp, "restricted", "v1.18").violations] == []
    assert [v.check for v in pss.evaluate({}, no_seccomp, "restricted", "v1.22").violations] == [
        "seccompProfile_restricted"
    ]
    assert [v.check for v in pss.evaluate({}, no_seccomp, "restricted", "v1.23").violations] == [
        "runAsUser",
        "seccompProfile_restricted",
    ]


def test_host_probes_are_forbidden_from_v1_34():
    container = {**RESTRICTED_CONTAINER, "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}
    spec = spec_with(containers=[container])
    assert pss.evaluate({}, spec, "baseline", "v1.33").allowed
    evaluation = pss.evaluate({}, spec, "baseline", "v1.34")
    assert evaluation.message.endswith(
        'probe or lifecycle host (container "app" uses probe or lifecycle host "10.0.0.1")'
    )


def test_user_namespaces_relax_baseline_proc_mount_from_v1_35_but_not_restricted():
    spec = spec_with(hostUsers=False, containers=[container_with(procMount="Unmasked")])
    assert not pss.evaluate({}, spec, "baseline", "v1.34").allowed
    assert pss.evaluate({}, spec, "baseline", "v1.35").allowed
    restricted = pss.evaluate({}, spec, "restricted", "v1.35")
    assert [v.check for v in restricted.violations] == ["procMount_restricted"]
    assert restricted.violations[0].detail == 'container "app" must not set securityContext.procMount to "Unmasked"'


def test_windows_pods_are_exempt_from_linux_only_restricted_checks_from_v1_25():
    spec = {"os": {"name": "windows"}, "containers": [{"name": "w"}], "securityContext": {"runAsNonRoot": True}}
    assert [v.check for v in pss.evaluate({}, spec, "restricted", "v1.24").violations] == [
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "seccompProfile_restricted",
    ]
    assert pss.evaluate({}, spec, "restricted", "v1.25").allowed


def test_app_armor_fields_and_annotations_share_one_violation():
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}
    spec = spec_with(containers=[container_with(appArmorProfile={"type": "Unconfined"})])
    violation = pss.evaluate(meta, spec, "baseline", "latest").violations[0]
    assert violation.reason == "forbidden AppArmor profiles"
    assert violation.detail == (
        'container "app" and annotation must not set AppArmor profile type to '
        '"Unconfined", "container.apparmor.security.beta.kubernetes.io/app="unconfined""'
    )


def test_versions_past_the_newest_evaluate_as_the_newest_but_keep_their_name():
    spec = spec_with(
        securityContext={**RESTRICTED_SPEC["securityContext"], "sysctls": [{"name": "kernel.msgmax", "value": "1"}]}
    )
    evaluation = pss.evaluate({}, spec, "restricted", "v1.99")
    assert evaluation.message == 'violates PodSecurity "restricted:v1.99": forbidden sysctls (kernel.msgmax)'


@pytest.mark.parametrize("text", ["1.30", "v2.1", "v1.01", "", "LATEST"])
def test_bad_versions_are_input_errors(text):
    with pytest.raises(InputError, match="latest"):
        pss.parse_version(text)


def test_parse_version_normalizes():
    assert str(pss.parse_version("latest")) == "latest"
    assert pss.parse_version("v1.30") == pss.Version(30)


def test_strictest_level_reports_what_blocks_the_next_level():
    assert pss.strictest_level({}, RESTRICTED_SPEC, "latest") == ("restricted", None)
    level, blocked = pss.strictest_level({}, {"containers": [{"name": "a"}]}, "latest")
    assert level == "baseline" and blocked.level == "restricted" and not blocked.allowed
    level, blocked = pss.strictest_level({}, {"hostIPC": True}, "v1.20")
    assert (
        level == "privileged"
        and blocked.message == 'violates PodSecurity "baseline:v1.20": host namespaces (hostIPC=true)'
    )


# --- manifests -----------------------------------------------------------------------


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


WORKLOADS = """\
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: nightly, namespace: ops}
    spec:
      schedule: "@daily"
      jobTemplate:
        spec:
          template:
            metadata: {annotations: {a: b}}
            spec:
              containers: [{name: job, image: busybox}]
    ---
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Pod
      metadata: {name: p1}
      spec: {containers: [{name: c, image: busybox}]}
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: settings}
    ---
    """


def test_multi_document_yaml_lists_and_cronjobs_are_loaded(tmp_path):
    write(tmp_path, "dir/workloads.yaml", WORKLOADS)
    write(
        tmp_path,
        "dir/nested/pod.json",
        json.dumps({"kind": "PodList", "items": [{"metadata": {"name": "p2"}, "spec": {"containers": []}}]}),
    )
    loaded = load_manifests([tmp_path / "dir"])
    assert [(o.kind, o.namespace, o.name) for o in loaded.objects] == [
        ("Pod", None, "p2"),
        ("CronJob", "ops", "nightly"),
        ("Pod", None, "p1"),
    ]
    cronjob = loaded.objects[1]
    assert cronjob.pod_metadata == {"annotations": {"a": "b"}}
    assert cronjob.pod_spec["containers"][0]["name"] == "job"
    assert [(s.kind, s.name) for s in loaded.skipped] == [("ConfigMap", "settings")]
    assert load_objects([tmp_path / "dir"]) == loaded.objects


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("bad.yaml", "kind: Pod\nmetadata: {name: [unclosed\n", "invalid YAML"),
        ("bad.json", "{not json", "invalid JSON"),
        ("scalar.yaml", "just a string\n", "document 1 is a str, not a Kubernetes object"),
        ("nokind.yaml", "metadata: {name: x}\n", "document 1 has no kind"),
        ("notemplate.yaml", "kind: Deployment\nmetadata: {name: d}\nspec: {}\n", "spec.template is missing"),
    ],
)
def test_malformed_manifests_raise_one_line_input_errors(tmp_path, name, text, problem):
    path = write(tmp_path, name, text)
    with pytest.raises(InputError) as raised:
        load_objects([path])
    assert raised.value.source == str(path)
    assert problem in raised.value.problem and "\n" not in raised.value.problem


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_objects([tmp_path / "absent.yaml"])


# --- CLI -----------------------------------------------------------------------------

HARDENED_POD = """\
    apiVersion: v1
    kind: Pod
    metadata: {name: good, namespace: web}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: x
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    """
PRIVILEGED_POD = """\
    apiVersion: v1
    kind: Pod
    metadata: {name: bad}
    spec:
      containers: [{name: app, image: x, securityContext: {privileged: true}}]
    """


def test_check_exits_0_when_everything_is_allowed(tmp_path, capsys):
    path = write(tmp_path, "good.yaml", HARDENED_POD)
    assert main(["pss", "check", str(path), "--level", "restricted"]) == 0
    assert capsys.readouterr().out == f"{path}: Pod/web/good: allowed\n"


def test_check_exits_1_and_prints_the_upstream_message_when_denied(tmp_path, capsys):
    good, bad = write(tmp_path, "good.yaml", HARDENED_POD), write(tmp_path, "bad.yaml", PRIVILEGED_POD)
    assert main(["pss", "check", str(good), str(bad), "--level", "baseline", "--policy-version", "v1.30"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{good}: Pod/web/good: allowed",
        f'{bad}: Pod/bad: violates PodSecurity "baseline:v1.30": privileged '
        '(container "app" must not set securityContext.privileged=true)',
    ]


def test_check_json_has_one_record_per_object(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", PRIVILEGED_POD)
    assert main(["pss", "check", str(path), "--level", "baseline", "--format", "json"]) == 1
    (record,) = json.loads(capsys.readouterr().out)["results"]
    assert record == {
        "source": str(path),
        "kind": "Pod",
        "namespace": None,
        "name": "bad",
        "level": "baseline",
        "version": "latest",
        "allowed": False,
        "message": 'violates PodSecurity "baseline:latest": privileged '
        '(container "app" must not set securityContext.privileged=true)',
        "violations": [
            {
                "check": "privileged",
                "reason": "privileged",
                "detail": 'container "app" must not set securityContext.privileged=true',
            }
        ],
    }


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--level", "strict"], "invalid level 'strict'"),
        (["--policy-version", "1.30"], "invalid policy version '1.30'"),
        (["--format", "xml"], "invalid --format 'xml'"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, args, problem):
    path = write(tmp_path, "good.yaml", HARDENED_POD)
    assert main(["pss", "check", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and problem in err and err.count("\n") == 1


def test_malformed_yaml_exits_2_naming_the_file(tmp_path, capsys):
    path = write(tmp_path, "broken.yaml", "kind: Pod\nspec: [\n")
    assert main(["pss", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: invalid YAML") and err.count("\n") == 1


def test_skipped_kinds_are_noted_on_stderr_not_errors(tmp_path, capsys):
    path = write(tmp_path, "svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    assert main(["pss", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"skipped: {path}: Service/web" in captured.err


def test_level_reports_the_strictest_level_met(tmp_path, capsys):
    good, bad = write(tmp_path, "good.yaml", HARDENED_POD), write(tmp_path, "bad.yaml", PRIVILEGED_POD)
    assert main(["pss", "level", str(good), str(bad), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["name"], r["level"]) for r in results] == [("good", "restricted"), ("bad", "privileged")]
    assert results[0]["blocked_by"] is None
    assert results[1]["blocked_by"]["level"] == "baseline"
    assert results[1]["blocked_by"]["violations"][0]["check"] == "privileged"
    assert main(["pss", "level", str(bad)]) == 0
    assert capsys.readouterr().out == (
        f'{bad}: Pod/bad: privileged (baseline: violates PodSecurity "baseline:latest": privileged '
        '(container "app" must not set securityContext.privileged=true))\n'
    )


# --- messages, line by line against upstream's policy/check_*.go ------------------------------------


def test_host_namespaces_detail_is_upstreams():
    spec = spec_with(hostIPC=True, hostPID=True, hostNetwork=True)
    (violation,) = pss.evaluate({}, spec, "baseline", "v1.0").violations
    assert violation.describe() == "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"


def test_annotation_values_are_quoted_as_go_quotes_them():
    meta = {
        "annotations": {
            "container.apparmor.security.beta.kubernetes.io/app": 'un"conf\tined\x7f\u00a0é😀',
            "seccomp.security.alpha.kubernetes.io/pod": "a\\b\n\x01",
        }
    }
    apparmor = pss.evaluate(meta, RESTRICTED_SPEC, "baseline", "latest").violations[0]
    assert apparmor.detail == (
        "annotation must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/app="un\\"conf\\tined\\x7f\\u00a0é😀""'
    )
    seccomp = pss.evaluate(meta, RESTRICTED_SPEC, "baseline", "v1.18").violations[1]
    assert seccomp.detail == 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="a\\\\b\\n\\x01"'


def test_unset_names_print_as_go_zero_values():
    spec = {
        "containers": [{"name": None, "securityContext": {"privileged": True}}],
        "volumes": [{"name": None, "hostPath": {"path": "/"}}],
        "securityContext": {"sysctls": [{"name": None}]},
    }
    message = pss.evaluate({}, spec, "baseline", "latest").message
    assert 'container "" must not set' in message and 'hostPath volumes (volume "")' in message
    assert message.endswith(", forbidden sysctls") and "None" not in message  # empty detail: no "()"


@pytest.mark.parametrize(
    "volume, allowed, detail",
    [
        ({"name": "v"}, True, None),  # no source: the API server defaults it to emptyDir
        ({"name": "v", "hostPath": None}, True, None),
        ({"name": "v", "emptyDir": {}, "hostPath": {}}, True, None),  # upstream's switch: an allowed source first
        ({"name": "v", "nfs": {}, "hostPath": {}}, False, 'volume "v" uses restricted volume type "hostPath"'),
        ({"name": "v", "futureSource": {}}, False, 'volume "v" uses restricted volume type "unknown"'),
    ],
)
def test_restricted_volumes_follow_upstreams_switch(volume, allowed, detail):
    evaluation = pss.evaluate({}, spec_with(volumes=[volume]), "restricted", "latest")
    assert evaluation.allowed is allowed
    if detail:
        assert evaluation.violations[0].detail == detail


def test_loaded_objects_know_where_they_are(tmp_path):
    path = write(tmp_path, "w.yaml", WORKLOADS)
    cronjob, pod = load_objects([path])
    assert (cronjob.document, cronjob.location, cronjob.template) == (
        1,
        (),
        ("spec", "jobTemplate", "spec", "template"),
    )
    assert (pod.document, pod.location, pod.template) == (2, ("items", 0), ())
