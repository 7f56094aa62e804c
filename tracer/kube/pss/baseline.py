"""The baseline checks: one function per revision of each of upstream's baseline
policy/check_*.go, with its check id, forbidden reason and detail string (tracer.kube.pss.registry
says at which versions each applies). The baseline level forbids the known privilege
escalations: privileged containers, host namespaces, paths and ports, added capabilities,
unconfined seccomp and AppArmor, custom SELinux types, unsafe sysctls, unmasked /proc.
"""

from __future__ import annotations

from tracer.kube.pss.gocompat import (
    Forbidden,
    containers,
    go_quote,
    go_string,
    join_quoted,
    lookup,
    name_of,
    named,
    pluralize,
    pod_and_containers_where,
    user_namespace_pod,
    volumes,
)


def privileged_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad = [name_of(c) for c in containers(spec) if lookup(c, "securityContext", "privileged") is True]
    if bad:
        return "privileged", f"{named('container', bad)} must not set securityContext.privileged=true"
    return None


def host_namespaces_1_0(meta: dict, spec: dict) -> Forbidden | None:
    used = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True]
    if used:
        return "host namespaces", ", ".join(used)
    return None


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _containers_using(spec: dict, values_of) -> tuple[list[str], set]:
    """The containers for which values_of(container) is not empty, and the union of those values."""
    bad, values = [], set()
    for container in containers(spec):
        used = values_of(container)
        if used:
            bad.append(name_of(container))
            values |= used
    return bad, values


def _added_beyond_baseline(container: dict) -> set:
    added = lookup(container, "securityContext", "capabilities", "add") or []
    return {cap for cap in added if cap not in BASELINE_CAPABILITIES}


def capabilities_baseline_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad, capabilities = _containers_using(spec, _added_beyond_baseline)
    if bad:
        return "non-default capabilities", (
            f"{named('container', bad)} must not include {join_quoted(sorted(capabilities))} "
            "in securityContext.capabilities.add"
        )
    return None


def host_path_volumes_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad = [name_of(v) for v in volumes(spec) if v.get("hostPath") is not None]
    if bad:
        return "hostPath volumes", named("volume", bad)
    return None


def _host_ports(container: dict) -> set:
    return {
        str(p["hostPort"])
        for p in container.get("ports") or []
        if isinstance(p, dict) and p.get("hostPort") not in (None, 0)
    }


def host_ports_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad, ports = _containers_using(spec, _host_ports)
    if bad:
        return "hostPort", (
            f"{named('container', bad)} {pluralize('uses', 'use', len(bad))} "
            f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}"
        )
    return None


def _probe_hosts(handler) -> list[str]:
    return [host for kind in ("httpGet", "tcpSocket") if (host := go_string(lookup(handler, kind, "host")))]


def _probe_and_lifecycle_hosts(container: dict) -> set:
    handlers = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    handlers += [lookup(container, "lifecycle", h) for h in ("postStart", "preStop")]
    return {host for handler in handlers for host in _probe_hosts(handler)}


def host_probes_and_host_lifecycle_1_34(meta: dict, spec: dict) -> Forbidden | None:
    bad, hosts = _containers_using(spec, _probe_and_lifecycle_hosts)
    bad = set(bad)
    if bad:
        return "probe or lifecycle host", (
            f"{named('container', sorted(bad))} {pluralize('uses', 'use', len(bad))} "
            f"{pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
            f"{join_quoted(sorted(hosts))}"
        )
    return None


APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _allowed_apparmor_annotation(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


def app_armor_profile_1_0(meta: dict, spec: dict) -> Forbidden | None:
    # Upstream amended this 1.0 revision in place (v1.30) to check the appArmorProfile
    # fields as well as the beta annotations, so every policy version checks both.
    setters, bad_types = [], set()
    if (profile := lookup(spec, "securityContext", "appArmorProfile")) is not None:
        if lookup(profile, "type") not in ("RuntimeDefault", "Localhost"):
            setters.append("pod")
            bad_types.add(go_string(lookup(profile, "type")))
    bad = []
    for container in containers(spec):
        profile = lookup(container, "securityContext", "appArmorProfile")
        if profile is not None and lookup(profile, "type") not in ("RuntimeDefault", "Localhost"):
            bad.append(name_of(container))
            bad_types.add(go_string(lookup(profile, "type")))
    if bad:
        setters.append(named("container", bad))
    annotations = sorted(
        f"{key}={go_quote(value)}"
        for key, value in (meta.get("annotations") or {}).items()
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not _allowed_apparmor_annotation(value)
    )
    if annotations:
        setters.append(pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    values = sorted(bad_types) + annotations
    return (
        pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {join_quoted(values)}",
    )


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux_options(spec: dict, allowed_types: frozenset) -> Forbidden | None:
    bad_types: set[str] = set()
    user_set = role_set = False

    def valid(options: dict) -> bool:
        nonlocal user_set, role_set
        ok = True
        if (type_ := go_string(options.get("type"))) not in allowed_types:
            bad_types.add(type_)
            ok = False
        if options.get("user"):
            user_set, ok = True, False
        if options.get("role"):
            role_set, ok = True, False
        return ok

    setters = pod_and_containers_where(
        spec, lambda context: isinstance(opts := lookup(context, "seLinuxOptions"), dict) and not valid(opts)
    )
    if not setters:
        return None
    problems = []
    if bad_types:
        problems.append(f"{pluralize('type', 'types', len(bad_types))} {join_quoted(sorted(bad_types))}")
    if user_set:
        problems.append("user may not be set")
    if role_set:
        problems.append("role may not be set")
    return "seLinuxOptions", (
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(problems)}"
    )


def se_linux_options_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return _se_linux_options(spec, SELINUX_TYPES_1_0)


def se_linux_options_1_31(meta: dict, spec: dict) -> Forbidden | None:
    return _se_linux_options(spec, SELINUX_TYPES_1_31)


def unmasked_proc_mount(spec: dict) -> Forbidden | None:
    bad, types = [], set()
    for container in containers(spec):
        proc_mount = lookup(container, "securityContext", "procMount")
        if proc_mount is not None and proc_mount != "Default":
            bad.append(name_of(container))
            types.add(proc_mount)
    if bad:
        return "procMount", (
            f"{named('container', bad)} must not set securityContext.procMount to {join_quoted(sorted(types))}"
        )
    return None


def proc_mount_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return unmasked_proc_mount(spec)


def proc_mount_1_35(meta: dict, spec: dict) -> Forbidden | None:
    # A pod in its own user namespace may unmask /proc. API validation only accepts
    # procMount: Unmasked together with hostUsers: false, so the conformance fail pods for
    # this revision (Unmasked with hostUsers: true) are ones the API server would refuse
    # before admission runs; upstream's harness therefore accepts an error for them
    # (expectations.json `_failRequiresError`). We have no API validation in front of us,
    # so the check itself denies them, with the same procMount reason.
    if user_namespace_pod(spec):
        return None
    return unmasked_proc_mount(spec)


SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _valid_seccomp_annotation(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def seccomp_profile_baseline_1_0(meta: dict, spec: dict) -> Forbidden | None:
    annotations = meta.get("annotations") or {}
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION_PREFIX + name_of(c) for c in containers(spec)]
    bad = sorted(
        {
            f"{key}={go_quote(annotations[key])}"
            for key in keys
            if key in annotations and not _valid_seccomp_annotation(annotations[key])
        }
    )
    if bad:
        return "seccompProfile", f"forbidden {pluralize('annotation', 'annotations', len(bad))} {', '.join(bad)}"
    return None


def seccomp_type(security_context) -> str | None:
    """The seccompProfile type a securityContext sets, "" when set without a type, None when unset."""
    profile = lookup(security_context, "seccompProfile")
    return None if profile is None else go_string(lookup(profile, "type"))


def valid_seccomp_type(type_: str) -> bool:
    return type_ in ("RuntimeDefault", "Localhost")


def seccomp_profile_baseline_1_19(meta: dict, spec: dict) -> Forbidden | None:
    setters, bad_values = [], set()
    pod_type = seccomp_type(spec.get("securityContext"))
    if pod_type is not None and not valid_seccomp_type(pod_type):
        setters.append("pod")
        bad_values.add(pod_type)
    bad = []
    for container in containers(spec):
        type_ = seccomp_type(container.get("securityContext"))
        if type_ is not None and not valid_seccomp_type(type_):
            bad.append(name_of(container))
            bad_values.add(type_)
    if bad:
        setters.append(named("container", bad))
    if setters:
        return "seccompProfile", (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{join_quoted(sorted(bad_values))}"
        )
    return None


SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
SYSCTLS_1_37 = SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _forbidden_sysctls(spec: dict, allowed: frozenset) -> Forbidden | None:
    sysctls = lookup(spec, "securityContext", "sysctls") or []
    bad = [name_of(s) for s in sysctls if isinstance(s, dict) and name_of(s) not in allowed]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def sysctls_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return _forbidden_sysctls(spec, SYSCTLS_1_0)


def sysctls_1_27(meta: dict, spec: dict) -> Forbidden | None:
    return _forbidden_sysctls(spec, SYSCTLS_1_27)


def sysctls_1_29(meta: dict, spec: dict) -> Forbidden | None:
    return _forbidden_sysctls(spec, SYSCTLS_1_29)


def sysctls_1_32(meta: dict, spec: dict) -> Forbidden | None:
    return _forbidden_sysctls(spec, SYSCTLS_1_32)


def sysctls_1_37(meta: dict, spec: dict) -> Forbidden | None:
    return _forbidden_sysctls(spec, SYSCTLS_1_37)


def windows_host_process_1_0(meta: dict, spec: dict) -> Forbidden | None:
    setters = pod_and_containers_where(spec, lambda context: lookup(context, "windowsOptions", "hostProcess") is True)
    if setters:
        return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    return None
