"""The smallest spec change (or exemption) that clears one Pod Security finding.

Each suggester reads the upstream forbidden details of one check (container names, volume
names, capability lists) and names the field to change and where.
"""

from __future__ import annotations

import re
from collections.abc import Callable

QUOTED = re.compile(r'"([^"]*)"')
CONTAINER_LIST = re.compile(r'\bcontainers? ((?:"[^"]*"(?:, )?)+)')
VOLUME_LIST = re.compile(r'\bvolumes? ((?:"[^"]*"(?:, )?)+|\[[^\]]*\])')


def _quoted_in(details: list[str], pattern: re.Pattern) -> list[str]:
    """Unique quoted names inside every match of `pattern` (group 1) across the details."""
    names = []
    for detail in details:
        for group in pattern.findall(detail):
            names += [name for name in QUOTED.findall(group) if name not in names]
    return names


def _target(details: list[str]) -> str:
    """Where to make the change: the pod securityContext, named containers, or all of them."""
    containers = _quoted_in(details, CONTAINER_LIST)
    noun = "container" if len(containers) == 1 else "containers"
    named = f"{noun} " + ", ".join(f'"{name}"' for name in containers) if containers else ""
    if any(d.startswith("pod or ") for d in details):  # unset everywhere: one pod-level field fixes all
        return "spec.securityContext" + (f" (or {named})" if named else "")
    if any(d.startswith(("pod ", "pod and ")) for d in details):  # the pod itself set a bad value
        return "spec.securityContext" + (f" and {named}" if named else "")
    return named or "containers[*]"


def _listed(values: list[str], fallback: str) -> str:
    return ", ".join(values) or fallback


ADDED_CAPABILITIES = re.compile(r" include (.*?) in securityContext\.capabilities\.add")
BAD_SECCOMP_TYPES = re.compile(r"seccompProfile\.type to (.*)$")


def _suggest_capabilities_restricted(details: list[str]) -> str:
    text = f'{_target(details)}: set securityContext.capabilities.drop: ["ALL"]'
    if extra := _quoted_in(details, ADDED_CAPABILITIES):
        text += f"; remove {', '.join(extra)} from capabilities.add"
    return text + " (restricted allows adding only NET_BIND_SERVICE)"


def _suggest_capabilities_baseline(details: list[str]) -> str:
    extra = _listed(_quoted_in(details, ADDED_CAPABILITIES), "the non-default capabilities")
    return (
        f"{_target(details)}: remove {extra} from securityContext.capabilities.add "
        "(keep only what tracer recorded in use), or exempt the workload"
    )


def _suggest_seccomp(details: list[str]) -> str:
    fix = "RuntimeDefault (or Localhost with the profile from tracer generate)"
    if bad := [d for d in details if "must not set" in d]:
        types = _listed(_quoted_in(bad, BAD_SECCOMP_TYPES), "the forbidden type")
        return f"{_target(bad)}: change seccompProfile.type from {types} to {fix}"
    return f"set spec.securityContext.seccompProfile.type: {fix}"


def _suggest_run_as_non_root(details: list[str]) -> str:
    if any("runAsNonRoot=false" in d for d in details):
        return f"{_target(details)}: remove runAsNonRoot: false; set runAsNonRoot: true and a non-zero runAsUser"
    return f"{_target(details)}: set runAsNonRoot: true and a non-zero runAsUser (e.g. 1000)"


def _suggest_privileged(details: list[str]) -> str:
    return (
        f"{_target(details)}: remove securityContext.privileged: true (GPUs come from the device plugin; "
        "add back only the capabilities tracer recorded), or exempt the namespace"
    )


def _suggest_host_namespaces(details: list[str]) -> str:
    used = sorted({part.split("=")[0].strip() for d in details for part in d.split(",") if part.strip()})
    return (
        f"remove {_listed([u + ': true' for u in used], 'hostNetwork/hostPID/hostIPC')} from the pod spec, "
        "or exempt the namespace"
    )


def _suggest_host_path(details: list[str]) -> str:
    volumes = _listed([f'"{v}"' for v in _quoted_in(details, VOLUME_LIST)], "the hostPath volumes")
    return (
        f"replace {volumes} with a PersistentVolumeClaim or CSI volume, or exempt the namespace "
        "(PodSecurityConfiguration exemptions.namespaces, or enforce=privileged) for node agents"
    )


def _suggest_restricted_volumes(details: list[str]) -> str:
    volumes = _listed([f'"{v}"' for v in _quoted_in(details, VOLUME_LIST)], "the listed volumes")
    return (
        f"replace {volumes} with configMap, secret, emptyDir, projected, downwardAPI, "
        "persistentVolumeClaim, ephemeral or csi volumes"
    )


SUGGESTERS: dict[str, Callable[[list[str]], str]] = {
    "allowPrivilegeEscalation": lambda d: f"{_target(d)}: set securityContext.allowPrivilegeEscalation: false",
    "capabilities_restricted": _suggest_capabilities_restricted,
    "capabilities_baseline": _suggest_capabilities_baseline,
    "seccompProfile_restricted": _suggest_seccomp,
    "seccompProfile_baseline": _suggest_seccomp,
    "runAsNonRoot": _suggest_run_as_non_root,
    "runAsUser": lambda d: f"{_target(d)}: set runAsUser to a non-zero UID (or leave it unset)",
    "privileged": _suggest_privileged,
    "hostPathVolumes": _suggest_host_path,
    "hostNamespaces": _suggest_host_namespaces,
    "hostPorts": lambda d: f"{_target(d)}: remove ports[*].hostPort and expose the port through a Service",
    "restrictedVolumes": _suggest_restricted_volumes,
    "procMount": lambda d: f"{_target(d)}: remove securityContext.procMount (or set it to Default)",
    "appArmorProfile": lambda d: "set appArmorProfile.type: RuntimeDefault (or Localhost) instead of Unconfined",
    "seLinuxOptions": lambda d: "remove seLinuxOptions user/role and use type container_t (or leave it unset)",
    "sysctls": lambda d: f"remove {_listed(d, 'the forbidden sysctls')} from spec.securityContext.sysctls",
    "hostProbesAndHostLifecycle": lambda d: f"{_target(d)}: remove host from the probe and lifecycle handlers",
    "windowsHostProcess": lambda d: "remove securityContext.windowsOptions.hostProcess: true",
}


def suggestion(check: str, details: list[str]) -> str:
    """The smallest spec change (or exemption) that clears one finding."""
    suggest = SUGGESTERS.get(check)
    return suggest(details) if suggest else f"no built-in suggestion for {check!r}; see the details"
