"""Fuzz the Kubernetes input of `tracer pss check` and `tracer k8s harden`.

An evaluator fails closed: input it cannot judge is an input error (exit 2, one line naming
the file, the document and the field), never "allowed", never exit 0, never a traceback.
These tests substitute wrong values for every field the checks read (the paths come from
`pod_schema.TYPES`, so a field added there is fuzzed too) in Pods, Deployments, CronJobs and
Lists; read YAML 1.1 booleans and numbers as Kubernetes does; and feed alias bombs, deep
nesting, huge numbers, oversized and empty files.

The CLI runs in-process through `tracer.cli.main`, with the typer app converted to its click
command once (typer rebuilds it on every call, 10x the cost of the work itself); a few runs
go through the installed `tracer` executable as a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

import tracer.cli
from tracer.kube import yaml11
from tracer.kube.pod_schema import TYPES

TRACER = Path(sys.executable).parent / "tracer"

# --- running the CLI ---------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    crash: str | None  # the traceback of an exception that escaped main()


def run(*args: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    crash = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = tracer.cli.main([str(a) for a in args])
        except BaseException:  # noqa: BLE001 - anything escaping main() is what we look for
            code, crash = None, traceback.format_exc()
    return Outcome(code, out.getvalue(), err.getvalue(), crash)


@pytest.fixture(scope="module", autouse=True)
def fast_cli():
    original = tracer.cli.app
    tracer.cli.app = typer.main.get_command(original)
    yield
    tracer.cli.app = original


def assert_refused(outcome: Outcome, file: Path, *fragments: str) -> None:
    """Exit 2 with one `error: FILE: ...` line holding every fragment; nothing allowed."""
    assert outcome.crash is None, outcome.crash
    assert outcome.code == 2, (outcome.code, outcome.out, outcome.err)
    assert "allowed" not in outcome.out
    lines = outcome.err.splitlines()
    assert len(lines) == 1, outcome.err
    assert lines[0].startswith(f"error: {file}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- manifests ---------------------------------------------------------------------------------

CONTAINER_CONTEXT = {
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    "procMount": "Default",
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "readOnlyRootFilesystem": True,
    "seLinuxOptions": {"user": "", "role": "", "type": "container_t", "level": "s0:c1"},
    "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
    "appArmorProfile": {"type": "Localhost", "localhostProfile": "p"},
    "windowsOptions": {"hostProcess": False},
}
HANDLER = {"httpGet": {"host": "", "port": 80}, "tcpSocket": {"host": "", "port": 80}}


def fresh(value):
    return json.loads(json.dumps(value))


def container(name: str) -> dict:
    return {
        "name": name,
        "image": "busybox",
        "securityContext": fresh(CONTAINER_CONTEXT),
        "ports": [{"containerPort": 80, "hostPort": 0}],
        "livenessProbe": fresh(HANDLER),
        "readinessProbe": fresh(HANDLER),
        "startupProbe": fresh(HANDLER),
        "lifecycle": {"postStart": fresh(HANDLER), "preStop": fresh(HANDLER)},
    }


def pod_spec() -> dict:
    """A pod that sets every field the checks read, and meets restricted at every version."""
    return {
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "hostUsers": True,
        "os": {"name": "linux"},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seLinuxOptions": {"type": "container_t"},
            "seccompProfile": {"type": "RuntimeDefault"},
            "appArmorProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}],
            "windowsOptions": {"hostProcess": False},
        },
        "initContainers": [container("init")],
        "containers": [container("app")],
        "ephemeralContainers": [container("debug")],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }


def pod_template() -> dict:
    return {"metadata": {"labels": {"app": "a"}, "annotations": {"note": "x"}}, "spec": pod_spec()}


def pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "annotations": {"note": "x"}},
        "spec": pod_spec(),
    }


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": pod_template()},
    }


def cronjob() -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": pod_template()}}},
    }


def pod_list() -> dict:
    item = pod()
    del item["kind"], item["apiVersion"]  # PodList items may omit them
    return {"apiVersion": "v1", "kind": "PodList", "items": [item]}


def list_of_deployments() -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": [deployment()]}


# (full manifest, type the wrapper's fields are walked from, path of the walk's root in the wrapper)
WRAPPERS = {
    "Pod": (pod, "Pod", ()),
    "Deployment": (deployment, "Deployment", ()),
    "CronJob": (cronjob, "CronJob", ()),
    "PodList": (pod_list, "Pod", ("items", 0)),
    "List": (list_of_deployments, "Deployment", ("items", 0)),
}

# The smallest valid manifests of each wrapper, which the fuzzed fields are added to (with the
# mappings and one-item lists on their way): the pure-Python YAML reader costs ~10 us a
# character, and the error must name the fuzzed field, which shows it was the cause.
SMALL_POD_SPEC = {"containers": [{"name": "app"}]}
SMALL = {
    "Pod": lambda: {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": fresh(SMALL_POD_SPEC)},
    "Deployment": lambda: {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": fresh(SMALL_POD_SPEC)}},
    },
    "CronJob": lambda: {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": fresh(SMALL_POD_SPEC)}}}},
    },
    "PodList": lambda: {"kind": "PodList", "items": [{"metadata": {"name": "p"}, "spec": fresh(SMALL_POD_SPEC)}]},
    "List": lambda: {"kind": "List", "items": [SMALL["Deployment"]()]},
}
LEVELS = ("restricted", "baseline", "privileged")

# --- field paths and wrong values -------------------------------------------------------------


def field_paths(type_name: str, prefix: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, descriptor) of every field in the schema reachable from `type_name`; an array
    or map also yields its first member, so wrong items are fuzzed as well."""
    found = []
    for field, descriptor in TYPES[type_name].items():
        path = prefix + (field,)
        found.append((path, descriptor))
        if descriptor.startswith("[]"):
            item = descriptor[2:]
            found += field_paths(item, path + (0,)) if item in TYPES else [(path + (0,), item)]
        elif descriptor.startswith("map[string]"):
            found.append((path + (Member("k"),), descriptor[len("map[string]") :]))
        elif descriptor in TYPES:
            found += field_paths(descriptor, path)
    return found


def kind_of(descriptor: str) -> str:
    if descriptor in ("boolean", "string"):
        return descriptor
    if descriptor in ("int32", "int64"):
        return "integer"
    if descriptor.startswith("[]"):
        return "array"
    if descriptor.startswith("map[string]"):
        return "map"
    return "object"


# YAML text of values of the wrong type, and the path suffix the error names (for members).
# Quoted scalars are strings; `yes`, `on`, `n` are YAML 1.1 booleans; `0755`, `1e3` integers.
WRONG: dict[str, list[tuple[str, str]]] = {
    "boolean": [
        ('"yes"', ""),
        ('"true"', ""),
        ("'on'", ""),
        ('""', ""),
        ("1", ""),
        ("0", ""),
        ("1.5", ""),
        ("[]", ""),
        ("[true]", ""),
        ("{}", ""),
        ("{a: true}", ""),
        ("abc", ""),
    ],
    "string": [
        ("1", ""),
        ("0", ""),
        ("1.5", ""),
        ("yes", ""),
        ("on", ""),
        ("n", ""),
        ("true", ""),
        ("0755", ""),
        ("1e3", ""),
        ("[]", ""),
        ('["a"]', ""),
        ("{}", ""),
        ("{a: b}", ""),
    ],
    "integer": [
        ('"0"', ""),
        ('"1000"', ""),
        ("'0'", ""),
        ("1.5", ""),
        ("-0.5", ""),
        ("yes", ""),
        ("true", ""),
        ("[]", ""),
        ("[0]", ""),
        ("{}", ""),
        ("{a: 0}", ""),
        ("abc", ""),
        ("9223372036854775808", ""),
    ],
    "object": [
        ('"x"', ""),
        ("'{}'", ""),
        ("1", ""),
        ("0", ""),
        ("1.5", ""),
        ("yes", ""),
        ("true", ""),
        ("[]", ""),
        ("[{}]", ""),
        ("abc", ""),
        ('""', ""),
    ],
    "array": [
        ('"x"', ""),
        ("ALL", ""),
        ("NOT_ALL", ""),
        ('"[]"', ""),
        ("1", ""),
        ("1.5", ""),
        ("yes", ""),
        ("{}", ""),
        ("{a: 1}", ""),
        ("abc", ""),
        ("[null]", "[0]"),
        ("[[]]", "[0]"),
        ("[1, 2]", "[0]"),
    ],
    "map": [
        ('"x"', ""),
        ("1", ""),
        ("1.5", ""),
        ("[]", ""),
        ("[a]", ""),
        ("yes", ""),
        ("abc", ""),
        ("{a: 1}", "[a]"),
        ("{a: yes}", "[a]"),
        ("{a: null}", "[a]"),
        ("{a: []}", "[a]"),
        ("{a: {}}", "[a]"),
    ],
}
PLACEHOLDER = "@@WRONG@@"


class Member(str):
    """A map key in a field path: written `[key]` in error messages."""


def expected_path(path: tuple) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, (int, Member)) else (f".{key}" if text else key)
    return text


def set_path(document, path: tuple, value) -> None:
    """Set the field at `path`, making the mappings on the way when the base lacks them."""
    node = document
    for key, following in zip(path, path[1:]):
        if not isinstance(key, int) and node.get(key) is None:
            node[key] = [{}] if isinstance(following, int) else {}
        node = node[key]
    node[path[-1]] = value


def with_wrong_value(make, path: tuple, yaml_text: str) -> str:
    """The manifest `make()` with the field at `path` written as the YAML text given."""
    document = make()
    set_path(document, path, PLACEHOLDER)
    return json.dumps(document).replace(json.dumps(PLACEHOLDER), yaml_text) + "\n"


def cases(wrapper: str) -> list[tuple[str, tuple, str]]:
    make, root, prefix = WRAPPERS[wrapper]
    return [(wrapper, prefix + path, descriptor) for path, descriptor in field_paths(root)]


def subset(values: list, path: tuple, count: int) -> list:
    """`count` of the values, a different selection for each path (stable across runs)."""
    start = zlib.crc32(repr(path).encode()) % len(values)
    return [values[(start + i * 5) % len(values)] for i in range(count)]


POD_CASES = cases("Pod")
WORKLOAD_CASES = [case for wrapper in ("Deployment", "CronJob", "PodList", "List") for case in cases(wrapper)]
HARDEN_CASES = cases("Deployment")


def case_id(case) -> str:
    return f"{case[0]}:{expected_path(case[1])}"


# --- a profile directory for harden -------------------------------------------------------------


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("profile") / "web"
    directory.mkdir()
    (directory / "seccomp.json").write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}],
            }
        )
    )
    (directory / "capabilities.json").write_text(json.dumps({"add": [], "drop": ["ALL"], "evidence": {}}))
    (directory / "recording.json").write_text(
        json.dumps(
            {
                "tool_version": "0.1.0",
                "traces": [],
                "rootfs_readonly": False,
                "writes_outside_volumes": False,
                "run_as_user": 1000,
            }
        )
    )
    return directory


def harden(tmp_path: Path, profile: Path, text: str, name: str = "m.yaml") -> tuple[Outcome, Path, Path]:
    manifest, out = tmp_path / name, tmp_path / f"{name}.out.yaml"
    manifest.write_text(text)
    return run("k8s", "harden", manifest, "--profile", profile, "--out", out), manifest, out


# --- the valid manifests are judged allowed (so every refusal below is the fuzzed field's) ---------


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_the_unfuzzed_manifests_meet_restricted(tmp_path, profile, wrapper):
    path = tmp_path / "ok.yaml"
    path.write_text(json.dumps(WRAPPERS[wrapper][0]()))
    outcome = run("pss", "check", path, "--level", "restricted")
    assert (outcome.code, outcome.crash) == (0, None), outcome.out + outcome.err
    assert outcome.out.endswith(": allowed\n")
    outcome, _, out = harden(tmp_path, profile, json.dumps(WRAPPERS[wrapper][0]()))
    assert (outcome.code, outcome.crash) == (0, None), outcome.out + outcome.err
    assert out.exists()


def test_every_schema_field_is_fuzzed():
    paths = {expected_path(path) for _, path, _ in POD_CASES}
    assert {
        "spec.containers[0].securityContext.privileged",
        "spec.hostNetwork",
        "spec.securityContext.windowsOptions.hostProcess",
        "spec.containers[0].securityContext.capabilities.drop",
        "spec.containers[0].securityContext.capabilities.drop[0]",
        "spec.volumes[0].hostPath",
        "metadata.annotations[k]",
        "spec.ephemeralContainers[0].ports[0].hostPort",
    } <= paths
    assert len(POD_CASES) > 150 and len(WORKLOAD_CASES) > 4 * 150


# --- wrong types at every level --------------------------------------------------------------------


@pytest.mark.parametrize("case", POD_CASES, ids=case_id)
def test_pss_check_refuses_every_wrong_type_in_a_pod(tmp_path, case):
    wrapper, path, descriptor = case
    file = tmp_path / "pod.yaml"
    for index, (yaml_text, suffix) in enumerate(WRONG[kind_of(descriptor)]):
        file.write_text(with_wrong_value(SMALL[wrapper], path, yaml_text))
        outcome = run("pss", "check", file, "--level", LEVELS[index % 3])
        assert_refused(outcome, file, f"document 1: {expected_path(path)}{suffix}: ")


@pytest.mark.parametrize("case", WORKLOAD_CASES, ids=case_id)
def test_pss_check_refuses_wrong_types_in_workloads_and_lists(tmp_path, case):
    wrapper, path, descriptor = case
    file = tmp_path / "workload.yaml"
    for index, (yaml_text, suffix) in enumerate(subset(WRONG[kind_of(descriptor)], path, 3)):
        file.write_text(with_wrong_value(SMALL[wrapper], path, yaml_text))
        assert_refused(
            run("pss", "check", file, "--level", LEVELS[index]), file, f"document 1: {expected_path(path)}{suffix}: "
        )


@pytest.mark.parametrize("case", HARDEN_CASES, ids=case_id)
def test_harden_refuses_wrong_types_and_writes_nothing(tmp_path, profile, case):
    wrapper, path, descriptor = case
    for yaml_text, suffix in subset(WRONG[kind_of(descriptor)], path, 3):
        outcome, manifest, out = harden(tmp_path, profile, with_wrong_value(SMALL[wrapper], path, yaml_text))
        assert_refused(outcome, manifest, f"document 1: {expected_path(path)}{suffix}: ")
        assert not out.exists()


STRUCTURE = [
    # (manifest text, fragment of the error)
    ("- a\n- b\n", "document 1 is a list, not a Kubernetes object"),
    ("just text\n", "document 1 is a str"),
    ("yes\n", "document 1 is a bool"),
    ("kind: 5\n", "document 1: kind: expected string, got integer"),
    ("kind: yes\n", "document 1: kind: expected string, got boolean"),
    ("kind: pod\nspec: {containers: []}\n", "'pod' is not a Kubernetes kind"),
    ("kind: POD\nspec: {containers: []}\n", "'POD' is not a Kubernetes kind"),
    ("kind: deployment\n", "'deployment' is not a Kubernetes kind"),
    ("kind: podlist\nitems: []\n", "'podlist' is not a Kubernetes kind"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "document 1: spec is missing"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: null\n", "document 1: spec is missing"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {}\n", "document 1: spec.containers is missing"),
    ("apiVersion: v1\nkind: Pod\nspec: {containers: ~}\n", "document 1: spec.containers is missing"),
    ("apiVersion: v1\nkind: Pod\nspec: []\n", "document 1: spec: expected object, got array"),
    ("apiVersion: v1\nkind: Pod\nmetadata: 5\nspec: {containers: []}\n", "document 1: metadata: expected object"),
    ("apiVersion: 1\nkind: Pod\nspec: {containers: []}\n", "document 1: apiVersion: expected string"),
    ("apiVersion: apps/v1\nkind: Pod\nspec: {containers: []}\n", "apiVersion apps/v1 has no kind 'Pod'"),
    ("apiVersion: apps/v1beta2\nkind: Pod\nspec: {containers: []}\n", "apps/v1beta2 does not serve kind Pod"),
    (
        "apiVersion: apps/v1\nkind: Dyment\nspec: {template: {spec: {containers: []}}}\n",
        "apiVersion apps/v1 has no kind 'Dyment'",
    ),
    ("apiVersion: v1\nkind: Pods\nspec: {containers: []}\n", "apiVersion v1 has no kind 'Pods'"),
    ("kind: 'P> od'\nspec: {containers: []}\n", "'P> od' is not a valid kind name"),
    ("kind: ''\n", "document 1 has no kind"),
    ("apiVersion: '%YAML 1.1 apps/v1'\nkind: Deployment\n", "'%YAML 1.1 apps/v1' is not a valid apiVersion"),
    ("apiVersion: apps/v1\nkind: Deployment\nspec: {}\n", "document 1: spec.template is missing"),
    ("apiVersion: apps/v1\nkind: Deployment\nspec: {template: {}}\n", "document 1: spec.template.spec is missing"),
    ("apiVersion: apps/v1\nkind: Deployment\nspec: {template: []}\n", "spec.template: expected object"),
    ("apiVersion: batch/v1\nkind: CronJob\nspec: {jobTemplate: {spec: 5}}\n", "spec.jobTemplate.spec: expected object"),
    ("kind: PodList\nitems: {a: 1}\n", "document 1: items: expected array, got object"),
    ("kind: PodList\nitems: [5]\n", "document 1: items[0] is a int"),
    ("kind: PodList\nitems: [{kind: Deployment}]\n", "items[0].kind: 'Deployment' in a PodList"),
    ("kind: List\nitems: [{metadata: {}}]\n", "document 1: items[0] has no kind"),
    (
        "kind: List\nitems: [{kind: Pod, spec: {containers: [{name: a, securityContext: {privileged: 1}}]}}]\n",
        "document 1: items[0].spec.containers[0].securityContext.privileged: expected boolean, got integer",
    ),
    ("kind: Service\nmetadata: {name: 5}\n", "document 1: metadata.name: expected string, got integer"),
    (
        "kind: Pod\nspec: {containers: []}\n---\nkind: Pod\nspec: {containers: [{name: 1}]}\n",
        "document 2: spec.containers[0].name: expected string",
    ),
    (
        "kind: Pod\nspec: {containers: [], volumes: [{name: v, hostPath: /etc}]}\n",
        "spec.volumes[0].hostPath: expected object, got string",
    ),
    (
        "kind: Pod\nspec: {containers: [{name: a, securityContext: {capabilities: {drop: NOT_ALL}}}]}\n",
        "capabilities.drop: expected array, got string",
    ),
]


@pytest.mark.parametrize("text, fragment", STRUCTURE)
def test_malformed_structure_is_refused_by_check_level_and_harden(tmp_path, profile, text, fragment):
    file = tmp_path / "m.yaml"
    file.write_text(text)
    for args in (("pss", "check", file), ("pss", "check", file, "--level", "privileged"), ("pss", "level", file)):
        assert_refused(run(*args), file, fragment)
    outcome, manifest, out = harden(tmp_path, profile, text)
    assert_refused(outcome, manifest, fragment)
    assert not out.exists()


# --- YAML 1.1: what kubectl and the API server read --------------------------------------------------

TRUE_SPELLINGS = ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"]
FALSE_SPELLINGS = ["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"]
BASELINE_BOOLEANS = [
    (
        ("spec", "containers", 0, "securityContext", "privileged"),
        'privileged (container "app" must not set securityContext.privileged=true)',
    ),
    (
        ("spec", "initContainers", 0, "securityContext", "privileged"),
        'privileged (container "init" must not set securityContext.privileged=true)',
    ),
    (("spec", "hostNetwork"), "host namespaces (hostNetwork=true)"),
    (("spec", "hostPID"), "host namespaces (hostPID=true)"),
    (("spec", "hostIPC"), "host namespaces (hostIPC=true)"),
    (
        ("spec", "securityContext", "windowsOptions", "hostProcess"),
        "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
    ),
    (
        ("spec", "ephemeralContainers", 0, "securityContext", "windowsOptions", "hostProcess"),
        'hostProcess (container "debug" must not set securityContext.windowsOptions.hostProcess=true)',
    ),
]


@pytest.mark.parametrize("spelling", TRUE_SPELLINGS)
@pytest.mark.parametrize(
    "path, violation", BASELINE_BOOLEANS, ids=lambda v: expected_path(v) if isinstance(v, tuple) else ""
)
def test_yaml_1_1_true_is_true(tmp_path, path, violation, spelling):
    file = tmp_path / "pod.yaml"
    file.write_text(with_wrong_value(pod, path, spelling))
    outcome = run("pss", "check", file, "--level", "baseline")
    assert (outcome.code, outcome.crash) == (1, None), outcome.out + outcome.err
    assert f'violates PodSecurity "baseline:latest": {violation}' in outcome.out
    assert "allowed" not in outcome.out


@pytest.mark.parametrize("spelling", FALSE_SPELLINGS)
def test_yaml_1_1_false_is_false(tmp_path, spelling):
    file = tmp_path / "pod.yaml"
    document = with_wrong_value(pod, ("spec", "containers", 0, "securityContext", "allowPrivilegeEscalation"), spelling)
    file.write_text(document)
    assert run("pss", "check", file, "--level", "restricted").code == 0
    file.write_text(with_wrong_value(pod, ("spec", "securityContext", "runAsNonRoot"), spelling))
    outcome = run("pss", "check", file, "--level", "restricted")
    assert outcome.code == 1 and "pod must not set securityContext.runAsNonRoot=false" in outcome.out


@pytest.mark.parametrize("number", ["0", "00", "-0", "+0", "0x0", "0o0", "0b0", "0_0", "0.0", "-0.0", "0e5", ".0"])
def test_every_spelling_of_zero_runs_as_root(tmp_path, number):
    file = tmp_path / "pod.yaml"
    file.write_text(with_wrong_value(pod, ("spec", "securityContext", "runAsUser"), number))
    outcome = run("pss", "check", file, "--level", "restricted")
    assert outcome.code == 1 and "runAsUser=0 (pod must not set runAsUser=0)" in outcome.out


@pytest.mark.parametrize(
    "number, shown",
    [
        ("0x50", "80"),
        ("0120", "80"),
        ("0o120", "80"),
        ("8_0", "80"),
        ("80.0", "80"),
        ("8e1", "80"),
        ("0b1010000", "80"),
    ],
)
def test_yaml_1_1_integers_are_read_as_kubectl_reads_them(tmp_path, number, shown):
    file = tmp_path / "pod.yaml"
    file.write_text(with_wrong_value(pod, ("spec", "containers", 0, "ports", 0, "hostPort"), number))
    outcome = run("pss", "check", file, "--level", "baseline")
    assert outcome.code == 1 and f'hostPort (container "app" uses hostPort {shown})' in outcome.out


def test_null_is_unset_not_an_error(tmp_path):
    file = tmp_path / "pod.yaml"
    for path in (
        ("spec", "containers", 0, "securityContext", "privileged"),
        ("spec", "hostNetwork"),
        ("spec", "volumes"),
        ("spec", "securityContext", "seLinuxOptions"),
    ):
        for null in ("null", "~", "Null", "NULL"):
            file.write_text(with_wrong_value(pod, path, null))
            assert run("pss", "check", file, "--level", "restricted").code == 0


def test_harden_judges_yaml_1_1_and_writes_real_booleans(tmp_path, profile):
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: app\n"
        "    image: busybox\n    securityContext: {privileged: yes, runAsUser: 0x3e8}\n"
    )
    outcome, _, out = harden(tmp_path, profile, text)
    assert outcome.code == 0 and "Pod Security privileged -> restricted" in outcome.out, outcome.out + outcome.err
    assert "privileged: true replaced by false" in outcome.err
    written = out.read_text()
    assert "privileged: false" in written and "allowPrivilegeEscalation: false" in written
    (document,) = yaml11.load_yaml(written, out)
    context = document.value["spec"]["containers"][0]["securityContext"]
    assert context["privileged"] is False and context["runAsNonRoot"] is True and context["runAsUser"] == 1000

    hostnet = text.replace("spec:\n", "spec:\n  hostNetwork: on\n").replace("privileged: yes, ", "")
    outcome, _, out = harden(tmp_path, profile, hostnet, "hostnet.yaml")
    assert outcome.code == 1 and "Pod Security privileged -> privileged" in outcome.out
    assert "restricted: hostNamespaces: hostNetwork=true" in outcome.out
    assert "hostNetwork: on" in out.read_text()  # kept as written: harden does not decide that one


def test_harden_quotes_strings_kubernetes_would_read_otherwise(tmp_path, profile):
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: app, image: x}\n"
    manifest, out = tmp_path / "m.yaml", tmp_path / "out.yaml"
    manifest.write_text(text)
    outcome = run("k8s", "harden", manifest, "--profile", profile, "--out", out, "--localhost-path", "on")
    assert outcome.code == 0, outcome.err
    (document,) = yaml11.load_yaml(out.read_text(), out)
    assert document.value["spec"]["containers"][0]["securityContext"]["seccompProfile"]["localhostProfile"] == "on"


def test_harden_refuses_aliases_and_merge_keys(tmp_path, profile):
    shared = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "  - &c {name: app, image: x}\n  initContainers:\n  - *c\n"
    )
    merged = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - <<: {image: x}\n    name: app\n"
    for text in (shared, merged):
        outcome, manifest, out = harden(tmp_path, profile, text)
        assert_refused(outcome, manifest, "anchors, aliases or merge keys")
        assert not out.exists()


def test_pss_check_follows_aliases_and_merge_keys_as_go_yaml_v2(tmp_path):
    file = tmp_path / "pod.yaml"
    file.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nx-base: &ctx {privileged: on}\nspec:\n"
        "  containers:\n  - name: app\n    securityContext:\n      <<: *ctx\n"
    )
    outcome = run("pss", "check", file, "--level", "baseline")
    assert outcome.code == 1 and "securityContext.privileged=true" in outcome.out


def test_duplicate_keys_and_json_only_values_are_refused(tmp_path):
    file = tmp_path / "pod.yaml"
    for text, fragment in [
        (
            "kind: Pod\nspec: {containers: [{name: a, securityContext: {privileged: false, privileged: true}}]}\n",
            "duplicate key 'privileged'",
        ),
        ("kind: Pod\nspec: {containers: [], x: .inf}\n", ".inf cannot be represented in JSON"),
        ("kind: Pod\nspec: {containers: [], x: .nan}\n", ".nan cannot be represented in JSON"),
        ("kind: Pod\n~: 1\nspec: {containers: []}\n", "null mapping key"),
        ("kind: Pod\nspec: {containers: [{name: !!int x}]}\n", "cannot decode !!str `x` as a !!int"),
        ("kind: Pod\nspec: {containers: [{name: *nowhere}]}\n", "unknown anchor 'nowhere'"),
    ]:
        file.write_text(text)
        assert_refused(run("pss", "check", file), file, fragment)


# --- bounds -------------------------------------------------------------------------------------

ALIAS_BOMB = (
    "".join(
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
        for prev, name in zip([None, *"abcdefgh"], "abcdefghi")
    )
    + "kind: Pod\nspec: {containers: []}\n"
)
DEEP_YAML_FLOW = "kind: Pod\nspec: {containers: []}\nx: " + "[" * 2000 + "]" * 2000 + "\n"
DEEP_YAML_BLOCK = "kind: Pod\nspec: {containers: []}\nx:\n" + "".join(f"{' ' * i}- \n" for i in range(1, 150))
HUGE_INT = "kind: Pod\nspec: {containers: [{name: a, securityContext: {runAsUser: " + "9" * 5000 + "}}]}\n"
HUGE_INT_ELSEWHERE = "kind: Pod\nspec: {containers: []}\nx: " + "1" * 5000 + "\n"

BOUNDS = [
    ("bomb.yaml", ALIAS_BOMB, "aliases expand to more than"),
    ("deep.yaml", DEEP_YAML_FLOW, "nested deeper than 100 levels"),
    ("deep-block.yaml", DEEP_YAML_BLOCK, "nested deeper than 100 levels"),
    ("deep.json", '{"kind": "Pod", "x": ' + "[" * 2000 + "]" * 2000 + "}", "nested deeper than 100 levels"),
    ("deep-shallow.json", '{"kind": "Pod", "x": ' + "[" * 150 + "]" * 150 + "}", "nested deeper than 100 levels"),
    ("huge.yaml", HUGE_INT, "number longer than 100 characters"),
    ("huge-elsewhere.yaml", HUGE_INT_ELSEWHERE, "number longer than 100 characters"),
    ("huge.json", '{"kind": "Pod", "spec": {"containers": []}, "x": ' + "7" * 5000 + "}", "number longer than"),
    ("hugefloat.json", '{"kind": "Pod", "spec": {"containers": []}, "x": 1e999}', "out of range"),
    ("nan.json", '{"kind": "Pod", "spec": {"containers": []}, "x": NaN}', "NaN is not JSON"),
    ("dup.json", '{"kind": "Pod", "kind": "Pod"}', "duplicate key 'kind'"),
    ("empty.yaml", "", "holds no Kubernetes object"),
    ("blank.yaml", "\n\n   \n", "holds no Kubernetes object"),
    ("comments.yaml", "# just a comment\n# another\n", "holds no Kubernetes object"),
    ("separators.yaml", "---\n---\n...\n", "holds no Kubernetes object"),
    ("emptylist.yaml", "apiVersion: v1\nkind: List\nitems: []\n", "holds no Kubernetes object"),
    ("empty.json", "", "invalid JSON"),
    ("binary.yaml", "kind: Pod\x00\n", "valid YAML"),  # pss: "invalid YAML", harden: "not valid YAML"
]


@pytest.mark.parametrize("name, text, fragment", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_bounds_and_empty_input_exit_2_with_the_reason(tmp_path, profile, name, text, fragment):
    file = tmp_path / name
    file.write_text(text)
    assert_refused(run("pss", "check", file), file, fragment)
    assert_refused(run("pss", "level", file), file, fragment)
    outcome, manifest, out = harden(tmp_path, profile, text, name)
    assert_refused(outcome, manifest, fragment)
    assert not out.exists()


def test_files_past_8_mib_are_refused_unread(tmp_path, profile):
    file = tmp_path / "big.yaml"
    padding = "# " + "x" * 1022 + "\n"
    file.write_text("kind: Pod\nspec: {containers: []}\n" + padding * (8 * 1024 + 1))
    assert_refused(run("pss", "check", file), file, "larger than 8 MiB")
    out = tmp_path / "out.yaml"
    assert_refused(run("k8s", "harden", file, "--profile", profile, "--out", out), file, "larger than 8 MiB")
    assert not out.exists()


# --- the installed executable ----------------------------------------------------------------------


# Runs the command as its only child and reports that child's peak resident memory.
MEASURE = (
    "import resource, subprocess, sys\n"
    "status = subprocess.run(sys.argv[1:]).returncode\n"
    "print(f'peak-kib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def run_tracer(*args: str) -> tuple[int, str, str, int]:
    """Run the `tracer` executable; (exit status, stdout, stderr, peak RSS in MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(TRACER), *map(str, args)], capture_output=True, text=True, timeout=120
    )
    err, _, peak = done.stderr.rpartition("peak-kib ")
    return done.returncode, done.stdout, err, int(peak) // 1024


def test_the_executable_refuses_bombs_and_bypasses_without_tracebacks(tmp_path):
    assert TRACER.exists(), "scripts/setup installs .venv/bin/tracer"
    cases = {
        "bomb.yaml": (ALIAS_BOMB, 2, "aliases expand to more than"),
        "deep.yaml": (DEEP_YAML_FLOW, 2, "nested deeper than 100 levels"),
        "huge.yaml": (HUGE_INT, 2, "number longer than 100 characters"),
        "empty.yaml": ("# nothing here\n", 2, "holds no Kubernetes object"),
        "yes.yaml": (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostPID: y\n  containers:\n"
            "  - {name: app, image: x, securityContext: {privileged: yes}}\n",
            1,
            "host namespaces (hostPID=true)",
        ),
    }
    for name, (text, code, fragment) in cases.items():
        file = tmp_path / name
        file.write_text(text)
        status, out, err, peak_mib = run_tracer("pss", "check", "--level", "restricted", file)
        assert status == code, (name, out, err)
        assert fragment in out + err and "Traceback" not in err and "allowed" not in out
        assert peak_mib < 500, f"{name}: {peak_mib} MiB"
