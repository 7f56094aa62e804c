"""Namespace Pod Security labels and the PodSecurity admission configuration."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from tracer.cli import main
from tracer.errors import InputError
from tracer.kube import admission, names


def parse(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(text)


# --- tracer k8s namespace ------------------------------------------------------------


def test_namespace_carries_a_level_and_version_label_per_mode(capsys):
    assert (
        main(["k8s", "namespace", "shop", "--enforce", "baseline", "--warn", "restricted", "--policy-version", "v1.30"])
        == 0
    )
    assert parse(capsys.readouterr().out) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "shop",
            "labels": {
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/enforce-version": "v1.30",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/warn-version": "v1.30",
            },
        },
    }


def test_namespace_out_writes_the_file(tmp_path, capsys):
    out = tmp_path / "ns.yaml"
    assert main(["k8s", "namespace", "shop", "--enforce", "restricted", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert parse(out.read_text())["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == "latest"


@pytest.mark.parametrize(
    "args, problem",
    [
        (["Shop", "--enforce", "baseline"], 'metadata.name: Invalid value: "Shop": a lowercase RFC 1123 label'),
        (
            ["shop", "--enforce", "strict"],
            'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
            "must be one of privileged, baseline, restricted",
        ),
        (
            ["shop", "--audit", "baseline", "--policy-version", "1.30"],
            'metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "1.30": must be "latest" or "v1.x"',
        ),
        (["shop"], "at least one of --enforce, --audit or --warn is required"),
    ],
)
def test_invalid_namespace_settings_exit_2(capsys, args, problem):
    assert main(["k8s", "namespace", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and problem in captured.err and captured.err.count("\n") == 1


# --- tracer k8s admission-config ------------------------------------------------------


def test_admission_config_embeds_the_pod_security_configuration(capsys):
    assert (
        main(
            [
                "k8s",
                "admission-config",
                "--enforce",
                "restricted",
                "--enforce-version",
                "v1.30",
                "--exempt-namespace",
                "kube-system",
                "--exempt-runtime-class",
                "gvisor.example.com",
                "--exempt-user",
                "system:serviceaccount:ci:deployer",
            ]
        )
        == 0
    )
    config = parse(capsys.readouterr().out)
    assert config["apiVersion"] == "apiserver.config.k8s.io/v1" and config["kind"] == "AdmissionConfiguration"
    (plugin,) = config["plugins"]
    assert plugin["name"] == "PodSecurity"
    assert plugin["configuration"] == {
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": {
            "enforce": "restricted",
            "enforce-version": "v1.30",
            "audit": "restricted",
            "audit-version": "latest",
            "warn": "restricted",
            "warn-version": "latest",
        },
        "exemptions": {
            "usernames": ["system:serviceaccount:ci:deployer"],
            "runtimeClasses": ["gvisor.example.com"],
            "namespaces": ["kube-system"],
        },
    }


def test_admission_config_defaults_follow_the_kubernetes_documentation(tmp_path):
    out = tmp_path / "admission.yaml"
    assert main(["k8s", "admission-config", "--out", str(out)]) == 0
    defaults = parse(out.read_text())["plugins"][0]["configuration"]["defaults"]
    assert (defaults["enforce"], defaults["audit"], defaults["warn"]) == ("baseline", "restricted", "restricted")


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--warn", "none"], 'defaults.warn: Invalid value: "none": must be one of privileged, baseline, restricted'),
        (["--audit-version", "v2.0"], 'defaults.audit-version: Invalid value: "v2.0": must be "latest" or "v1.x"'),
        (["--exempt-namespace", "a", "--exempt-namespace", "a"], 'exemptions.namespaces[1]: Duplicate value: "a"'),
        (["--exempt-namespace", "a.b"], 'exemptions.namespaces[0]: Invalid value: "a.b": a lowercase RFC 1123 label'),
        (
            ["--exempt-runtime-class", "Kata"],
            'exemptions.runtimeClasses[0]: Invalid value: "Kata": a lowercase RFC 1123 subdomain',
        ),
        (["--exempt-user", ""], "exemptions.usernames[0]: Required value"),
        (["--exempt-user", "u", "--exempt-user", "u"], 'exemptions.usernames[1]: Duplicate value: "u"'),
    ],
)
def test_invalid_admission_config_exits_2(tmp_path, capsys, args, problem):
    out = tmp_path / "admission.yaml"
    assert main(["k8s", "admission-config", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid PodSecurityConfiguration: ") and problem in err
    assert not out.exists()


def test_validation_reports_every_problem_in_upstream_order():
    config = admission.pod_security_configuration(enforce="x", warn_version="y", exempt_namespaces=["-bad-"])
    assert admission.validate_pod_security_configuration(config) == [
        'defaults.enforce: Invalid value: "x": must be one of privileged, baseline, restricted',
        'defaults.warn-version: Invalid value: "y": must be "latest" or "v1.x"',
        'exemptions.namespaces[0]: Invalid value: "-bad-": ' + names.dns1123_label_problems("-bad-")[0],
    ]
    with pytest.raises(InputError):
        admission.admission_configuration(config)


def test_namespace_names_longer_than_63_characters_are_rejected():
    assert names.dns1123_label_problems("a" * 63) == []
    assert names.dns1123_label_problems("a" * 64) == ["must be no more than 63 characters"]
