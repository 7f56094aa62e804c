"""Install a recorded seccomp profile on Kubernetes, two ways.

1. A Security Profiles Operator `SeccompProfile` object. Today's operator
   (security-profiles-operator.x-k8s.io/v1, the resource cluster-scoped) writes it to every
   node as /var/lib/kubelet/seccomp/operator/<name>.json, so pods refer to it as
   localhostProfile "operator/<name>.json". Older operators (api "v1beta1": the resource
   namespaced) write operator/<namespace>/<name>.json.
2. The plain OCI profile, copied by the operator of the cluster to
   /var/lib/kubelet/seccomp/seccomp-tracer/<name>.json on every node; pods refer to it
   as localhostProfile "seccomp-tracer/<name>.json".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tracer.errors import InputError
from tracer.files import atomic_write_json, atomic_write_text
from tracer.kube.harden import KUBELET_SECCOMP_ROOT
from tracer.kube.names import dns1123_label_problems, dns1123_subdomain_problems
from tracer.kube.yaml_out import to_yaml
from tracer.profile.directory import ProfileDir

SPO_GROUP = "security-profiles-operator.x-k8s.io"
SPO_APIS = ("v1", "v1beta1")  # today's operator (cluster-scoped); older operators (namespaced)
SPO_PROFILES_DIR = "operator"  # under the kubelet seccomp root
PLAIN_PROFILES_DIR = "seccomp-tracer"
EPERM = 1
SPO_MAX_ARGS = 6  # the CRD's maxItems for a rule's args
INT64_MAX = 2**63 - 1  # the CRD's format for args' value and valueTwo


@dataclass(frozen=True)
class InstallFiles:
    seccomp_profile_object: Path  # the SPO SeccompProfile manifest
    plain_profile: Path  # the OCI profile for /var/lib/kubelet/seccomp/seccomp-tracer/
    spo_localhost_profile: str
    plain_localhost_profile: str
    warnings: tuple[str, ...]

    @property
    def plain_install_path(self) -> str:
        return f"{KUBELET_SECCOMP_ROOT}/{self.plain_localhost_profile}"


def check_api(api: str) -> None:
    if api not in SPO_APIS:
        raise InputError(None, f"--spo-api {api!r}: expected one of {', '.join(SPO_APIS)}")


def check_names(name: str, namespace: str) -> None:
    if dns1123_subdomain_problems(name):
        raise InputError(None, f"--name {name!r} is not a valid object name (lower-case letters, digits, '-' and '.')")
    if dns1123_label_problems(namespace):
        raise InputError(
            None,
            f"--namespace {namespace!r} is not a valid namespace name (lower-case letters, digits and '-', at most 63)",
        )


def spo_localhost_profile(name: str, namespace: str, api: str = "v1") -> str:
    if api == "v1beta1":
        return f"{SPO_PROFILES_DIR}/{namespace}/{name}.json"
    return f"{SPO_PROFILES_DIR}/{name}.json"


def plain_localhost_profile(name: str) -> str:
    return f"{PLAIN_PROFILES_DIR}/{name}.json"


def plain_profile(profile: ProfileDir) -> dict:
    """The OCI LinuxSeccomp object as kubelet hands it to containerd/CRI-O."""
    seccomp = profile.seccomp
    return {
        "defaultAction": seccomp["defaultAction"],
        "defaultErrnoRet": seccomp.get("defaultErrnoRet", EPERM),
        "architectures": list(seccomp.get("architectures", [])),
        "syscalls": [_rule(rule) for rule in seccomp.get("syscalls", [])],
    }


def seccomp_profile_object(profile: ProfileDir, name: str, namespace: str, api: str = "v1") -> dict:
    """The SPO SeccompProfile (cluster-scoped for v1, in `namespace` for v1beta1). Its spec
    has no defaultErrnoRet: the runtime uses EPERM."""
    seccomp = profile.seccomp
    spec = {"defaultAction": seccomp["defaultAction"]}
    if seccomp.get("architectures"):
        spec["architectures"] = list(seccomp["architectures"])
    spec["syscalls"] = [_rule(rule) for rule in seccomp.get("syscalls", [])]
    metadata = {"name": name, "labels": {"app.kubernetes.io/managed-by": "seccomp-tracer"}}
    if api == "v1beta1":
        metadata = {"name": name, "namespace": namespace, "labels": metadata["labels"]}
    return {"apiVersion": f"{SPO_GROUP}/{api}", "kind": "SeccompProfile", "metadata": metadata, "spec": spec}


def _rule(rule: dict) -> dict:
    # errnoRet stays an integer: SPO fixed it from string to uint (kubernetes-sigs/
    # security-profiles-operator#1769) because runtimes reject a string there.
    out = {"names": list(rule["names"]), "action": rule["action"]}
    if rule.get("args"):  # argument conditions are the point of the rule: never dropped
        out["args"] = [
            {key: arg[key] for key in ("index", "value", "valueTwo", "op") if key in arg} for arg in rule["args"]
        ]
    if "errnoRet" in rule:
        out["errnoRet"] = rule["errnoRet"]
    if rule.get("args"):
        out["args"] = [dict(condition) for condition in rule["args"]]
    return out


def check_expressible(profile: ProfileDir) -> None:
    """What the SeccompProfile's schema cannot hold: argument values beyond int64 (its
    format) and more than six conditions in a rule."""
    file = profile.path / "seccomp.json"
    for index, rule in enumerate(profile.seccomp.get("syscalls", [])):
        conditions = rule.get("args", [])
        if len(conditions) > SPO_MAX_ARGS:
            raise InputError(
                file,
                f"syscalls[{index}].args: {len(conditions)} conditions, a SeccompProfile holds at most {SPO_MAX_ARGS}",
            )
        for position, condition in enumerate(conditions):
            for key in ("value", "valueTwo"):
                if condition.get(key, 0) > INT64_MAX:
                    raise InputError(
                        file,
                        f"syscalls[{index}].args[{position}].{key}: {condition[key]} does not fit "
                        "the SeccompProfile's int64 (write it as the plain profile only)",
                    )


def write_install_files(
    profile: ProfileDir, name: str, namespace: str, out_dir: str | Path, api: str = "v1"
) -> InstallFiles:
    check_api(api)
    check_names(name, namespace)
    check_expressible(profile)
    warnings = []
    default_errno = profile.seccomp.get("defaultErrnoRet", EPERM)
    if default_errno != EPERM:
        warnings.append(
            f"defaultErrnoRet {default_errno} cannot be expressed in a SeccompProfile: "
            "under the operator denied syscalls fail with EPERM"
        )
    directory = Path(out_dir)
    object_file = directory / f"{name}.seccompprofile.yaml"
    plain_file = directory / f"{name}.json"
    atomic_write_text(object_file, to_yaml(seccomp_profile_object(profile, name, namespace, api)))
    atomic_write_json(plain_file, plain_profile(profile))
    return InstallFiles(
        object_file,
        plain_file,
        spo_localhost_profile(name, namespace, api),
        plain_localhost_profile(name),
        tuple(warnings),
    )
