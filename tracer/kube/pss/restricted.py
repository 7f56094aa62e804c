"""The restricted checks: one function per revision of each of upstream's restricted
policy/check_*.go (tracer.kube.pss.registry says at which versions each applies and which
baseline check it replaces). The restricted level adds the hardening best practices: no
privilege escalation, every capability dropped, non-root, RuntimeDefault or Localhost
seccomp, only ephemeral and projected volume types.
"""

from __future__ import annotations

from tracer.kube.pod_schema import TYPES
from tracer.kube.pss.baseline import seccomp_type, unmasked_proc_mount, valid_seccomp_type
from tracer.kube.pss.gocompat import (
    Forbidden,
    containers,
    join_quoted,
    lookup,
    name_of,
    named,
    pluralize,
    pod_and_containers_where,
    pod_or_container_setting,
    user_namespace_pod,
    volumes,
    windows_pod,
)


def allow_privilege_escalation_1_8(meta: dict, spec: dict) -> Forbidden | None:
    bad = [
        name_of(c) for c in containers(spec) if lookup(c, "securityContext", "allowPrivilegeEscalation") is not False
    ]
    if bad:
        return (
            "allowPrivilegeEscalation != false",
            f"{named('container', bad)} must set securityContext.allowPrivilegeEscalation=false",
        )
    return None


def allow_privilege_escalation_1_25(meta: dict, spec: dict) -> Forbidden | None:
    # API validation forbids the field on Windows pods, so Windows pods are exempt.
    return None if windows_pod(spec) else allow_privilege_escalation_1_8(meta, spec)


def capabilities_restricted_1_22(meta: dict, spec: dict) -> Forbidden | None:
    missing_drop_all, adding, capabilities = [], [], set()
    for container in containers(spec):
        caps = lookup(container, "securityContext", "capabilities")
        if caps is None:
            missing_drop_all.append(name_of(container))
            continue
        if "ALL" not in (lookup(caps, "drop") or []):
            missing_drop_all.append(name_of(container))
        extra = {cap for cap in lookup(caps, "add") or [] if cap != "NET_BIND_SERVICE"}
        if extra:
            adding.append(name_of(container))
            capabilities |= extra
    details = []
    if missing_drop_all:
        details.append(f'{named("container", missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{named('container', adding)} must not include {join_quoted(sorted(capabilities))} "
            "in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def capabilities_restricted_1_25(meta: dict, spec: dict) -> Forbidden | None:
    return None if windows_pod(spec) else capabilities_restricted_1_22(meta, spec)


def proc_mount_restricted_1_35(meta: dict, spec: dict) -> Forbidden | None:
    # Restricted keeps forbidding unmasked /proc even in a user namespace.
    return unmasked_proc_mount(spec)


ALLOWED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
RESTRICTED_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)


VOLUME_SOURCES = frozenset(TYPES["Volume"]) - {"name"}  # every VolumeSource field of the API
assert ALLOWED_VOLUME_SOURCES | set(RESTRICTED_VOLUME_SOURCES) == VOLUME_SOURCES, "volume source lists out of date"


def _volume_sources(volume: dict) -> set[str]:
    """The sources a volume sets: every key but `name` with a value. A key the API schema does
    not know (a source newer than it, or a typo) counts as an unrecognised source, which
    upstream's check reports as type "unknown": failing closed, where the API server of the
    schema's version would have dropped the key and defaulted the volume to emptyDir."""
    return {key for key, value in volume.items() if key != "name" and value is not None}


def restricted_volumes_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad, types = [], set()
    for volume in volumes(spec):
        sources = _volume_sources(volume)
        # The API server defaults a volume without a source to emptyDir (SetDefaults_Volume)
        # before admission runs; upstream's pass fixtures include such a volume.
        if not sources or sources & ALLOWED_VOLUME_SOURCES:
            continue
        bad.append(name_of(volume))
        types.add(next((s for s in RESTRICTED_VOLUME_SOURCES if s in sources), "unknown"))
    if bad:
        return "restricted volume types", (
            f"{named('volume', bad)} {pluralize('uses', 'use', len(bad))} "
            f"{pluralize('restricted volume type', 'restricted volume types', len(types))} "
            f"{join_quoted(sorted(types))}"
        )
    return None


def run_as_non_root_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return pod_or_container_setting(
        spec,
        "runAsNonRoot != true",
        lambda holder: lookup(holder, "securityContext", "runAsNonRoot"),
        is_bad=lambda value: value is False,
        covers=lambda value: value is True,
        must_not_set=lambda bad_values: "securityContext.runAsNonRoot=false",
        must_set="securityContext.runAsNonRoot=true",
    )


def run_as_non_root_1_35(meta: dict, spec: dict) -> Forbidden | None:
    return None if user_namespace_pod(spec) else run_as_non_root_1_0(meta, spec)


def run_as_user_1_23(meta: dict, spec: dict) -> Forbidden | None:
    setters = pod_and_containers_where(spec, lambda context: lookup(context, "runAsUser") == 0)
    if setters:
        return "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"
    return None


def run_as_user_1_35(meta: dict, spec: dict) -> Forbidden | None:
    return None if user_namespace_pod(spec) else run_as_user_1_23(meta, spec)


def seccomp_profile_restricted_1_19(meta: dict, spec: dict) -> Forbidden | None:
    return pod_or_container_setting(
        spec,
        "seccompProfile",
        lambda holder: seccomp_type(holder.get("securityContext")),
        is_bad=lambda type_: not valid_seccomp_type(type_),
        covers=valid_seccomp_type,
        must_not_set=lambda bad_values: (
            f"securityContext.seccompProfile.type to {join_quoted(sorted(set(bad_values)))}"
        ),
        must_set='securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
    )


def seccomp_profile_restricted_1_25(meta: dict, spec: dict) -> Forbidden | None:
    return None if windows_pod(spec) else seccomp_profile_restricted_1_19(meta, spec)
