"""Pod Security admission settings: namespace labels and the PodSecurity plugin config.

Values are validated as upstream validates them: levels and versions as `api.ParseLevel` /
`api.ParseVersion` do, the admission configuration as `ValidatePodSecurityConfiguration`
does (admission/api/validation), with its field-error wording, so a problem found here is
the one the API server would report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tracer.errors import InputError
from tracer.kube.names import dns1123_label_problems, dns1123_subdomain_problems
from tracer.kube.pss import LEVELS

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")

_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")


# --- upstream field errors (k8s.io/apimachinery/pkg/util/validation/field) ------------


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _invalid(path: str, value: str, detail: str) -> str:
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


def _duplicate(path: str, value: str) -> str:
    return f"{path}: Duplicate value: {_quote(value)}"


def _required(path: str) -> str:
    return f"{path}: Required value"


# --- single values ------------------------------------------------------------------


def level_problem(value: str) -> str | None:
    if value in LEVELS:
        return None
    return f"must be one of {', '.join(LEVELS)}"


def version_problem(value: str) -> str | None:
    if value == "latest" or _VERSION_RE.match(value):
        return None
    return 'must be "latest" or "v1.x"'


# --- namespace labels ----------------------------------------------------------------


def namespace_labels(levels: dict[str, str | None], version: str = "latest") -> dict[str, str]:
    """`pod-security.kubernetes.io/<mode>[-version]` labels for the modes given a level."""
    labels = {}
    for mode in MODES:
        if levels.get(mode):
            labels[f"{LABEL_PREFIX}{mode}"] = levels[mode]
            labels[f"{LABEL_PREFIX}{mode}-version"] = version
    return labels


def namespace_manifest(
    name: str, enforce: str | None = None, audit: str | None = None, warn: str | None = None, version: str = "latest"
) -> dict:
    """A v1 Namespace carrying Pod Security labels; InputError on any invalid value."""
    levels = {"enforce": enforce, "audit": audit, "warn": warn}
    errors = [
        _invalid("metadata.name", name, ", ".join(problems)) for problems in [dns1123_label_problems(name)] if problems
    ]
    if not any(levels.values()):
        errors.append("at least one of --enforce, --audit or --warn is required")
    for label, value in namespace_labels(levels, version).items():
        problem = version_problem(value) if label.endswith("-version") else level_problem(value)
        if problem:
            errors.append(_invalid(f"metadata.labels[{label}]", value, problem))
    _raise_if(errors, "invalid Namespace")
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": namespace_labels(levels, version)},
    }


# --- admission configuration ---------------------------------------------------------


def pod_security_configuration(
    enforce: str = "baseline",
    enforce_version: str = "latest",
    audit: str = "restricted",
    audit_version: str = "latest",
    warn: str = "restricted",
    warn_version: str = "latest",
    exempt_usernames: Sequence[str] = (),
    exempt_runtime_classes: Sequence[str] = (),
    exempt_namespaces: Sequence[str] = (),
) -> dict:
    """A `pod-security.admission.config.k8s.io/v1` PodSecurityConfiguration."""
    return {
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": {
            "enforce": enforce,
            "enforce-version": enforce_version,
            "audit": audit,
            "audit-version": audit_version,
            "warn": warn,
            "warn-version": warn_version,
        },
        "exemptions": {
            "usernames": list(exempt_usernames),
            "runtimeClasses": list(exempt_runtime_classes),
            "namespaces": list(exempt_namespaces),
        },
    }


def validate_pod_security_configuration(config: dict) -> list[str]:
    """Upstream ValidatePodSecurityConfiguration: one field error per problem."""
    defaults = config.get("defaults") or {}
    errors = []
    for mode in ("enforce", "warn", "audit"):
        for key, check in ((mode, level_problem), (f"{mode}-version", version_problem)):
            value = str(defaults.get(key, ""))
            if problem := check(value):
                errors.append(_invalid(f"defaults.{key}", value, problem))
    exemptions = config.get("exemptions") or {}
    errors += _validate_exemptions("namespaces", exemptions.get("namespaces") or [], dns1123_label_problems)
    errors += _validate_exemptions("runtimeClasses", exemptions.get("runtimeClasses") or [], dns1123_subdomain_problems)
    errors += _validate_exemptions("usernames", exemptions.get("usernames") or [], None)
    return errors


def _validate_exemptions(kind: str, values: list[str], name_problems) -> list[str]:
    errors, seen = [], set()
    for index, value in enumerate(values):
        path = f"exemptions.{kind}[{index}]"
        if name_problems is None and value == "":
            errors.append(_required(path))
        elif name_problems is not None and (problems := name_problems(value)):
            errors.append(_invalid(path, value, ", ".join(problems)))
        elif value in seen:
            errors.append(_duplicate(path, value))
        else:
            seen.add(value)
    return errors


def admission_configuration(pod_security: dict) -> dict:
    """An `apiserver.config.k8s.io/v1` AdmissionConfiguration embedding the PodSecurity config."""
    _raise_if(validate_pod_security_configuration(pod_security), "invalid PodSecurityConfiguration")
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [{"name": "PodSecurity", "configuration": pod_security}],
    }


def _raise_if(errors: list[str], what: str) -> None:
    if errors:
        raise InputError(None, f"{what}: {'; '.join(errors)}")
