"""`tracer k8s seccompprofile`: the SPO object and the kubelet file for a recorded profile."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from support.spo_crd import (
    SPO_CRD,
    SPO_CRD_V1BETA1,
    validate_against_crd,
)
from tracer.cli import main
from tracer.kube.harden import default_localhost_profile
from tracer.profile.directory import load_profile_dir

SECCOMP = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["futex", "read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ],
}


def write_profile_dir(root: Path, name: str = "nim-llm", seccomp: dict = SECCOMP) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "seccomp.json").write_text(json.dumps(seccomp))
    (directory / "capabilities.json").write_text(json.dumps({"add": [], "drop": ["ALL"], "evidence": {}}))
    return directory


def run(profile: Path, *args: str) -> int:
    return main(["k8s", "seccompprofile", str(profile), *args])


# --- the SPO CustomResourceDefinition as a JSON Schema --------------------------------


# --- tests ------------------------------------------------------------------------------


def test_writes_a_seccompprofile_that_validates_against_the_spo_crd(tmp_path, capsys):
    profile = write_profile_dir(tmp_path)
    code = run(profile, "--name", "nim-llm", "--out-dir", str(tmp_path / "out"))
    obj = YAML(typ="safe").load((tmp_path / "out" / "nim-llm.seccompprofile.yaml").read_text())

    assert code == 0
    assert obj["apiVersion"] == "security-profiles-operator.x-k8s.io/v1"
    validate_against_crd(obj)
    assert obj["metadata"]["name"] == "nim-llm" and "namespace" not in obj["metadata"]
    assert "localhostProfile: operator/nim-llm.json" in capsys.readouterr().out
    assert obj["spec"] == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": SECCOMP["syscalls"],  # errnoRet stays the integer 38
    }


def test_older_operators_get_a_namespaced_v1beta1_object(tmp_path, capsys):
    profile = write_profile_dir(tmp_path)
    code = run(
        profile, "--name", "nim-llm", "--namespace", "nim", "--spo-api", "v1beta1", "--out-dir", str(tmp_path / "out")
    )
    obj = YAML(typ="safe").load((tmp_path / "out" / "nim-llm.seccompprofile.yaml").read_text())

    assert code == 0
    validate_against_crd(obj, SPO_CRD_V1BETA1)
    assert obj["metadata"]["name"] == "nim-llm" and obj["metadata"]["namespace"] == "nim"
    assert "localhostProfile: operator/nim/nim-llm.json" in capsys.readouterr().out
    with pytest.raises(AssertionError):  # today's CRD is cluster-scoped: a namespace does not belong
        validate_against_crd(obj, SPO_CRD)


def test_unknown_spo_api_exits_2(tmp_path, capsys):
    code = run(write_profile_dir(tmp_path), "--name", "nim-llm", "--spo-api", "v2", "--out-dir", str(tmp_path / "out"))
    assert code == 2 and "--spo-api 'v2'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_crd_check_catches_a_wrong_object():
    obj = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1",
        "kind": "SeccompProfile",
        "metadata": {"name": "x"},
        "spec": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": "38"}],
        },
    }
    with pytest.raises(jsonschema.ValidationError, match="'38' is not of type 'integer'"):
        validate_against_crd(obj)
    obj["spec"]["syscalls"][0]["errnoRet"] = 38
    obj["spec"]["defaultErrno"] = 1
    with pytest.raises(jsonschema.ValidationError, match="defaultErrno"):
        validate_against_crd(obj)


def test_plain_file_is_the_oci_profile_kubelet_loads(tmp_path):
    profile = write_profile_dir(tmp_path)
    run(profile, "--name", "nim-llm", "--out-dir", str(tmp_path / "out"))

    assert json.loads((tmp_path / "out" / "nim-llm.json").read_text()) == SECCOMP


def test_prints_where_each_file_goes_and_its_localhost_profile(tmp_path, capsys):
    profile = write_profile_dir(tmp_path)
    run(profile, "--name", "nim-llm")
    out = capsys.readouterr().out

    assert "localhostProfile: operator/nim-llm.json" in out
    assert "localhostProfile: seccomp-tracer/nim-llm.json" in out
    assert "/var/lib/kubelet/seccomp/seccomp-tracer/nim-llm.json" in out
    assert (profile / "k8s" / "nim-llm.json").exists()  # default --out-dir is DIR/k8s


def test_plain_localhost_profile_matches_what_harden_uses_by_default(tmp_path, capsys):
    profile = write_profile_dir(tmp_path)
    run(profile, "--name", profile.name)

    assert f"localhostProfile: {default_localhost_profile(load_profile_dir(profile))}" in capsys.readouterr().out


def test_default_errno_other_than_eperm_is_warned_about(tmp_path, capsys):
    profile = write_profile_dir(tmp_path, seccomp={**SECCOMP, "defaultErrnoRet": 38})
    code = run(profile, "--name", "nim-llm")

    assert code == 0
    assert "defaultErrnoRet 38 cannot be expressed in a SeccompProfile" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--name", "NIM_LLM"], "--name 'NIM_LLM' is not a valid object name"),
        (["--name", "nim", "--namespace", "a.b"], "--namespace 'a.b' is not a valid namespace name"),
    ],
)
def test_bad_names_exit_2_and_write_nothing(tmp_path, capsys, args, problem):
    profile = write_profile_dir(tmp_path)
    code = run(profile, *args, "--out-dir", str(tmp_path / "out"))

    err = capsys.readouterr().err
    assert code == 2 and problem in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_bad_profile_dir_exits_2_and_writes_nothing(tmp_path, capsys):
    profile = write_profile_dir(tmp_path, seccomp={"defaultAction": "SCMP_ACT_ERRNO", "syscalls": "read"})
    code = run(profile, "--name", "nim-llm", "--out-dir", str(tmp_path / "out"))

    err = capsys.readouterr().err
    assert code == 2 and 'seccomp.json: syscalls: expected a list, got the string "read"' in err
    assert not (tmp_path / "out").exists()
