"""Pod Security Standards evaluator, faithful to upstream pod-security-admission.

Each check below mirrors a `policy/check_*.go` file of kubernetes/pod-security-admission:
same check id, same forbidden reason, same detail string, same policy versions. `REGISTRY`
lists every check with the policy versions at which its behaviour changed; `evaluate`
picks, for each check, the newest revision not newer than the requested version.

How upstream composes a level (policy/registry.go), reproduced here:
- `privileged` allows everything;
- `baseline` runs the baseline checks;
- `restricted` runs the restricted checks plus every baseline check that no restricted
  check *overrides* at that version (e.g. `capabilities_restricted` replaces
  `capabilities_baseline` from v1.22 on);
- checks run in a fixed order: baseline ids sorted, then restricted ids sorted;
- a version newer than the newest revision of any check (and `latest`) evaluates as the
  newest one, while the message keeps the version that was asked for.

Pods are plain dicts as decoded from YAML/JSON (`metadata`, `spec`), not typed objects.
`evaluate` first checks that every field the checks read has its API type (`shapes`), so a
malformed pod is an `InputError`, never "allowed"; read manifests with `manifests` (YAML 1.1,
as Kubernetes reads them) so that `privileged: yes` is the boolean the API server sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tracer.errors import InputError
from tracer.kube import shapes
from tracer.kube.pod_schema import TYPES

LEVELS = ("privileged", "baseline", "restricted")  # least to most strict
PRIVILEGED, BASELINE, RESTRICTED = LEVELS


# --- versions ------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")  # upstream api.ParseVersion


@dataclass(frozen=True)
class Version:
    """A policy version: `v1.N`, or `latest` (minor is None)."""

    minor: int | None

    @property
    def latest(self) -> bool:
        return self.minor is None

    def __str__(self) -> str:
        return "latest" if self.minor is None else f"v1.{self.minor}"


def parse_version(value: str | Version) -> Version:
    """Parse `latest` or `v1.N` exactly as upstream does; anything else is an InputError."""
    if isinstance(value, Version):
        return value
    if value == "latest":
        return Version(None)
    match = _VERSION_RE.match(value or "")
    if not match:
        raise InputError(None, f'invalid policy version {value!r}: must be "latest" or "v1.x"')
    return Version(int(match.group(1)))


def parse_level(value: str) -> str:
    if value not in LEVELS:
        raise InputError(None, f"invalid level {value!r}: must be one of {', '.join(LEVELS)}")
    return value


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    check: str
    reason: str
    detail: str

    def describe(self) -> str:
        """`reason (detail)` as upstream's AggregateCheckResult.ForbiddenDetail prints it."""
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


@dataclass(frozen=True)
class Evaluation:
    allowed: bool
    level: str
    version: str
    message: str  # "" when allowed
    violations: list[Violation] = field(default_factory=list)


def forbidden_message(level: str, version: str, violations: list[Violation]) -> str:
    """The admission error text: `violates PodSecurity "restricted:v1.30": a (x), b`."""
    return f'violates PodSecurity "{level}:{version}": ' + ", ".join(v.describe() for v in violations)


# --- helpers mirroring upstream's helpers.go / visitor.go ----------------------------

Forbidden = tuple[str, str]  # (reason, detail)
CheckFn = Callable[[dict, dict], "Forbidden | None"]


def _get(obj, *keys):
    """obj[k1][k2]... or None when any step is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _containers(spec: dict) -> Iterator[dict]:
    """Init containers, containers, then ephemeral containers (upstream visitContainers)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                yield container


def _volumes(spec: dict) -> list[dict]:
    return [v for v in spec.get("volumes") or [] if isinstance(v, dict)]


def _text(value) -> str:
    """A string field as Go reads it: unset (null) is ""."""
    return value if isinstance(value, str) else ""


def _name(obj: dict) -> str:
    return _text(obj.get("name"))


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items) -> str:
    return ", ".join(f'"{item}"' for item in items)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _go_quote(text: str) -> str:
    """Go's %q (strconv.Quote): printable runes as they are, others escaped."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char == " " or char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:  # not valid UTF-8: Go sees the replacement rune
            out.append("\ufffd")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _named(noun: str, names: list[str]) -> str:
    """`container "a"` / `containers "a", "b"`."""
    return f"{_pluralize(noun, noun + 's', len(names))} {_join_quote(names)}"


def _pod_and_containers_where(spec: dict, bad_context) -> list[str]:
    """["pod", 'containers "a", "b"'] for the pod and the containers whose securityContext
    matches `bad_context`, in upstream's order, for "... must not set ..." details."""
    setters = ["pod"] if bad_context(_get(spec, "securityContext") or {}) else []
    bad = [_name(c) for c in _containers(spec) if bad_context(_get(c, "securityContext") or {})]
    if bad:
        setters.append(_named("container", bad))
    return setters


def _pod_or_container_setting(spec: dict, reason: str, read, *, is_bad, covers, must_not_set,
                              must_set: str) -> Forbidden | None:
    """A setting a pod may make for all its containers (runAsNonRoot, seccompProfile), judged
    and worded as upstream does: first who sets a bad value ("pod and containers "a", "b"
    must not set ..."), then the containers that leave it unset while the pod sets no value
    that covers them ("pod or container "c" must set ...")."""
    setters, bad_values = [], []
    pod_value = read(spec)
    if pod_value is not None and is_bad(pod_value):
        setters.append("pod")
        bad_values.append(pod_value)
    pod_covers = pod_value is not None and covers(pod_value)
    explicitly_bad, unset = [], []
    for container in _containers(spec):
        value = read(container)
        if value is None:
            if not pod_covers:
                unset.append(_name(container))
        elif is_bad(value):
            explicitly_bad.append(_name(container))
            bad_values.append(value)
    if explicitly_bad:
        setters.append(_named("container", explicitly_bad))
    if setters:
        return reason, f"{' and '.join(setters)} must not set {must_not_set(bad_values)}"
    if unset:
        return reason, f"pod or {_named('container', unset)} must set {must_set}"
    return None


def _user_namespace_pod(spec: dict) -> bool:
    """hostUsers: false relaxes some checks from v1.35 (KEP-127)."""
    return spec.get("hostUsers") is False


def _windows_pod(spec: dict) -> bool:
    return _get(spec, "os", "name") == "windows"


# --- baseline checks -----------------------------------------------------------------


def privileged_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad = [_name(c) for c in _containers(spec) if _get(c, "securityContext", "privileged") is True]
    if bad:
        return "privileged", f"{_named('container', bad)} must not set securityContext.privileged=true"
    return None


def host_namespaces_1_0(meta: dict, spec: dict) -> Forbidden | None:
    used = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True]
    if used:
        return "host namespaces", ", ".join(used)
    return None


BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def _containers_using(spec: dict, values_of) -> tuple[list[str], set]:
    """The containers for which values_of(container) is not empty, and the union of those values."""
    bad, values = [], set()
    for container in _containers(spec):
        used = values_of(container)
        if used:
            bad.append(_name(container))
            values |= used
    return bad, values


def _added_beyond_baseline(container: dict) -> set:
    added = _get(container, "securityContext", "capabilities", "add") or []
    return {cap for cap in added if cap not in BASELINE_CAPABILITIES}


def capabilities_baseline_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad, capabilities = _containers_using(spec, _added_beyond_baseline)
    if bad:
        return "non-default capabilities", (
            f"{_named('container', bad)} must not include {_join_quote(sorted(capabilities))} "
            "in securityContext.capabilities.add")
    return None


def host_path_volumes_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad = [_name(v) for v in _volumes(spec) if v.get("hostPath") is not None]
    if bad:
        return "hostPath volumes", _named("volume", bad)
    return None


def _host_ports(container: dict) -> set:
    return {str(p["hostPort"]) for p in container.get("ports") or []
            if isinstance(p, dict) and p.get("hostPort") not in (None, 0)}


def host_ports_1_0(meta: dict, spec: dict) -> Forbidden | None:
    bad, ports = _containers_using(spec, _host_ports)
    if bad:
        return "hostPort", (f"{_named('container', bad)} {_pluralize('uses', 'use', len(bad))} "
                            f"{_pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")
    return None


def _probe_hosts(handler) -> list[str]:
    return [host for kind in ("httpGet", "tcpSocket") if (host := _text(_get(handler, kind, "host")))]


def _probe_and_lifecycle_hosts(container: dict) -> set:
    handlers = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    handlers += [_get(container, "lifecycle", h) for h in ("postStart", "preStop")]
    return {host for handler in handlers for host in _probe_hosts(handler)}


def host_probes_and_host_lifecycle_1_34(meta: dict, spec: dict) -> Forbidden | None:
    bad, hosts = _containers_using(spec, _probe_and_lifecycle_hosts)
    bad = set(bad)
    if bad:
        return "probe or lifecycle host", (
            f"{_named('container', sorted(bad))} {_pluralize('uses', 'use', len(bad))} "
            f"{_pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
            f"{_join_quote(sorted(hosts))}")
    return None


APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _allowed_apparmor_annotation(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


def app_armor_profile_1_0(meta: dict, spec: dict) -> Forbidden | None:
    # Upstream amended this 1.0 revision in place (v1.30) to check the appArmorProfile
    # fields as well as the beta annotations, so every policy version checks both.
    setters, bad_types = [], set()
    if (profile := _get(spec, "securityContext", "appArmorProfile")) is not None:
        if _get(profile, "type") not in ("RuntimeDefault", "Localhost"):
            setters.append("pod")
            bad_types.add(_text(_get(profile, "type")))
    bad = []
    for container in _containers(spec):
        profile = _get(container, "securityContext", "appArmorProfile")
        if profile is not None and _get(profile, "type") not in ("RuntimeDefault", "Localhost"):
            bad.append(_name(container))
            bad_types.add(_text(_get(profile, "type")))
    if bad:
        setters.append(_named("container", bad))
    annotations = sorted(f"{key}={_go_quote(value)}" for key, value in (meta.get("annotations") or {}).items()
                         if key.startswith(APPARMOR_ANNOTATION_PREFIX)
                         and not _allowed_apparmor_annotation(value))
    if annotations:
        setters.append(_pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    values = sorted(bad_types) + annotations
    return (_pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}")


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux_options(spec: dict, allowed_types: frozenset) -> Forbidden | None:
    bad_types: set[str] = set()
    user_set = role_set = False

    def valid(options: dict) -> bool:
        nonlocal user_set, role_set
        ok = True
        if (type_ := _text(options.get("type"))) not in allowed_types:
            bad_types.add(type_)
            ok = False
        if options.get("user"):
            user_set, ok = True, False
        if options.get("role"):
            role_set, ok = True, False
        return ok

    setters = _pod_and_containers_where(
        spec, lambda context: isinstance(opts := _get(context, "seLinuxOptions"), dict) and not valid(opts))
    if not setters:
        return None
    problems = []
    if bad_types:
        problems.append(f"{_pluralize('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
    if user_set:
        problems.append("user may not be set")
    if role_set:
        problems.append("role may not be set")
    return "seLinuxOptions", (f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                              f"{'; '.join(problems)}")


def se_linux_options_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return _se_linux_options(spec, SELINUX_TYPES_1_0)


def se_linux_options_1_31(meta: dict, spec: dict) -> Forbidden | None:
    return _se_linux_options(spec, SELINUX_TYPES_1_31)


def _unmasked_proc_mount(spec: dict) -> Forbidden | None:
    bad, types = [], set()
    for container in _containers(spec):
        proc_mount = _get(container, "securityContext", "procMount")
        if proc_mount is not None and proc_mount != "Default":
            bad.append(_name(container))
            types.add(proc_mount)
    if bad:
        return "procMount", (f"{_named('container', bad)} must not set securityContext.procMount to "
                             f"{_join_quote(sorted(types))}")
    return None


def proc_mount_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return _unmasked_proc_mount(spec)


def proc_mount_1_35(meta: dict, spec: dict) -> Forbidden | None:
    # A pod in its own user namespace may unmask /proc. API validation only accepts
    # procMount: Unmasked together with hostUsers: false, so the conformance fail pods for
    # this revision (Unmasked with hostUsers: true) are ones the API server would refuse
    # before admission runs; upstream's harness therefore accepts an error for them
    # (expectations.json `_failRequiresError`). We have no API validation in front of us,
    # so the check itself denies them, with the same procMount reason.
    if _user_namespace_pod(spec):
        return None
    return _unmasked_proc_mount(spec)


SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _valid_seccomp_annotation(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def seccomp_profile_baseline_1_0(meta: dict, spec: dict) -> Forbidden | None:
    annotations = meta.get("annotations") or {}
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION_PREFIX + _name(c) for c in _containers(spec)]
    bad = sorted({f"{key}={_go_quote(annotations[key])}" for key in keys
                  if key in annotations and not _valid_seccomp_annotation(annotations[key])})
    if bad:
        return "seccompProfile", f"forbidden {_pluralize('annotation', 'annotations', len(bad))} {', '.join(bad)}"
    return None


def _seccomp_type(security_context) -> str | None:
    """The seccompProfile type a securityContext sets, "" when set without a type, None when unset."""
    profile = _get(security_context, "seccompProfile")
    return None if profile is None else _text(_get(profile, "type"))


def _valid_seccomp_type(type_: str) -> bool:
    return type_ in ("RuntimeDefault", "Localhost")


def seccomp_profile_baseline_1_19(meta: dict, spec: dict) -> Forbidden | None:
    setters, bad_values = [], set()
    pod_type = _seccomp_type(spec.get("securityContext"))
    if pod_type is not None and not _valid_seccomp_type(pod_type):
        setters.append("pod")
        bad_values.add(pod_type)
    bad = []
    for container in _containers(spec):
        type_ = _seccomp_type(container.get("securityContext"))
        if type_ is not None and not _valid_seccomp_type(type_):
            bad.append(_name(container))
            bad_values.add(type_)
    if bad:
        setters.append(_named("container", bad))
    if setters:
        return "seccompProfile", (f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                                  f"{_join_quote(sorted(bad_values))}")
    return None


SYSCTLS_1_0 = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
SYSCTLS_1_37 = SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset) -> CheckFn:
    def check(meta: dict, spec: dict) -> Forbidden | None:
        sysctls = _get(spec, "securityContext", "sysctls") or []
        bad = [_name(s) for s in sysctls if isinstance(s, dict) and _name(s) not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None
    return check


def windows_host_process_1_0(meta: dict, spec: dict) -> Forbidden | None:
    setters = _pod_and_containers_where(spec, lambda context: _get(context, "windowsOptions", "hostProcess") is True)
    if setters:
        return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    return None


# --- restricted checks ---------------------------------------------------------------


def allow_privilege_escalation_1_8(meta: dict, spec: dict) -> Forbidden | None:
    bad = [_name(c) for c in _containers(spec) if _get(c, "securityContext", "allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false",
                f"{_named('container', bad)} must set securityContext.allowPrivilegeEscalation=false")
    return None


def allow_privilege_escalation_1_25(meta: dict, spec: dict) -> Forbidden | None:
    # API validation forbids the field on Windows pods, so Windows pods are exempt.
    return None if _windows_pod(spec) else allow_privilege_escalation_1_8(meta, spec)


def capabilities_restricted_1_22(meta: dict, spec: dict) -> Forbidden | None:
    missing_drop_all, adding, capabilities = [], [], set()
    for container in _containers(spec):
        caps = _get(container, "securityContext", "capabilities")
        if caps is None:
            missing_drop_all.append(_name(container))
            continue
        if "ALL" not in (_get(caps, "drop") or []):
            missing_drop_all.append(_name(container))
        extra = {cap for cap in _get(caps, "add") or [] if cap != "NET_BIND_SERVICE"}
        if extra:
            adding.append(_name(container))
            capabilities |= extra
    details = []
    if missing_drop_all:
        details.append(f'{_named("container", missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_named('container', adding)} must not include {_join_quote(sorted(capabilities))} "
                       "in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def capabilities_restricted_1_25(meta: dict, spec: dict) -> Forbidden | None:
    return None if _windows_pod(spec) else capabilities_restricted_1_22(meta, spec)


def proc_mount_restricted_1_35(meta: dict, spec: dict) -> Forbidden | None:
    # Restricted keeps forbidding unmasked /proc even in a user namespace.
    return _unmasked_proc_mount(spec)


ALLOWED_VOLUME_SOURCES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
    "persistentVolumeClaim", "projected", "secret",
})
RESTRICTED_VOLUME_SOURCES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
    "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
    "scaleIO", "storageos",
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
    for volume in _volumes(spec):
        sources = _volume_sources(volume)
        # The API server defaults a volume without a source to emptyDir (SetDefaults_Volume)
        # before admission runs; upstream's pass fixtures include such a volume.
        if not sources or sources & ALLOWED_VOLUME_SOURCES:
            continue
        bad.append(_name(volume))
        types.add(next((s for s in RESTRICTED_VOLUME_SOURCES if s in sources), "unknown"))
    if bad:
        return "restricted volume types", (
            f"{_named('volume', bad)} {_pluralize('uses', 'use', len(bad))} "
            f"{_pluralize('restricted volume type', 'restricted volume types', len(types))} "
            f"{_join_quote(sorted(types))}")
    return None


def run_as_non_root_1_0(meta: dict, spec: dict) -> Forbidden | None:
    return _pod_or_container_setting(
        spec, "runAsNonRoot != true", lambda holder: _get(holder, "securityContext", "runAsNonRoot"),
        is_bad=lambda value: value is False, covers=lambda value: value is True,
        must_not_set=lambda bad_values: "securityContext.runAsNonRoot=false",
        must_set="securityContext.runAsNonRoot=true")


def run_as_non_root_1_35(meta: dict, spec: dict) -> Forbidden | None:
    return None if _user_namespace_pod(spec) else run_as_non_root_1_0(meta, spec)


def run_as_user_1_23(meta: dict, spec: dict) -> Forbidden | None:
    setters = _pod_and_containers_where(spec, lambda context: _get(context, "runAsUser") == 0)
    if setters:
        return "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"
    return None


def run_as_user_1_35(meta: dict, spec: dict) -> Forbidden | None:
    return None if _user_namespace_pod(spec) else run_as_user_1_23(meta, spec)


def seccomp_profile_restricted_1_19(meta: dict, spec: dict) -> Forbidden | None:
    return _pod_or_container_setting(
        spec, "seccompProfile", lambda holder: _seccomp_type(holder.get("securityContext")),
        is_bad=lambda type_: not _valid_seccomp_type(type_), covers=_valid_seccomp_type,
        must_not_set=lambda bad_values: f"securityContext.seccompProfile.type to {_join_quote(sorted(set(bad_values)))}",
        must_set='securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')


def seccomp_profile_restricted_1_25(meta: dict, spec: dict) -> Forbidden | None:
    return None if _windows_pod(spec) else seccomp_profile_restricted_1_19(meta, spec)


# --- registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    since: int  # first policy minor version (v1.N) this revision applies to
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check ids this restricted revision replaces


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    revisions: tuple[Revision, ...]  # oldest first

    def at(self, minor: int) -> Revision | None:
        """The revision in force at policy version v1.minor, None before the check existed."""
        applicable = [r for r in self.revisions if r.since <= minor]
        return applicable[-1] if applicable else None


def _check(id_: str, level: str, *revisions: Revision) -> Check:
    return Check(id_, level, revisions)


R = Revision
REGISTRY: tuple[Check, ...] = (
    # baseline
    _check("appArmorProfile", BASELINE, R(0, app_armor_profile_1_0)),
    _check("capabilities_baseline", BASELINE, R(0, capabilities_baseline_1_0)),
    _check("hostNamespaces", BASELINE, R(0, host_namespaces_1_0)),
    _check("hostPathVolumes", BASELINE, R(0, host_path_volumes_1_0)),
    _check("hostPorts", BASELINE, R(0, host_ports_1_0)),
    _check("hostProbesAndHostLifecycle", BASELINE, R(34, host_probes_and_host_lifecycle_1_34)),
    _check("privileged", BASELINE, R(0, privileged_1_0)),
    _check("procMount", BASELINE, R(0, proc_mount_1_0), R(35, proc_mount_1_35)),
    _check("seLinuxOptions", BASELINE, R(0, se_linux_options_1_0), R(31, se_linux_options_1_31)),
    _check("seccompProfile_baseline", BASELINE, R(0, seccomp_profile_baseline_1_0),
           R(19, seccomp_profile_baseline_1_19)),
    _check("sysctls", BASELINE, R(0, _sysctls(SYSCTLS_1_0)), R(27, _sysctls(SYSCTLS_1_27)),
           R(29, _sysctls(SYSCTLS_1_29)), R(32, _sysctls(SYSCTLS_1_32)), R(37, _sysctls(SYSCTLS_1_37))),
    _check("windowsHostProcess", BASELINE, R(0, windows_host_process_1_0)),
    # restricted
    _check("allowPrivilegeEscalation", RESTRICTED, R(8, allow_privilege_escalation_1_8),
           R(25, allow_privilege_escalation_1_25)),
    _check("capabilities_restricted", RESTRICTED, R(22, capabilities_restricted_1_22, ("capabilities_baseline",)),
           R(25, capabilities_restricted_1_25, ("capabilities_baseline",))),
    _check("procMount_restricted", RESTRICTED, R(35, proc_mount_restricted_1_35, ("procMount",))),
    _check("restrictedVolumes", RESTRICTED, R(0, restricted_volumes_1_0, ("hostPathVolumes",))),
    _check("runAsNonRoot", RESTRICTED, R(0, run_as_non_root_1_0), R(35, run_as_non_root_1_35)),
    _check("runAsUser", RESTRICTED, R(23, run_as_user_1_23), R(35, run_as_user_1_35)),
    _check("seccompProfile_restricted", RESTRICTED,
           R(19, seccomp_profile_restricted_1_19, ("seccompProfile_baseline",)),
           R(25, seccomp_profile_restricted_1_25, ("seccompProfile_baseline",))),
)
del R

NEWEST_MINOR = max(r.since for c in REGISTRY for r in c.revisions)  # what `latest` means


def checks_for(level: str, version: str | Version) -> list[tuple[str, Revision]]:
    """(check id, revision) pairs run for a level and version, in upstream's order."""
    level = parse_level(level)
    if level == PRIVILEGED:
        return []
    parsed = parse_version(version)
    minor = NEWEST_MINOR if parsed.latest else min(parsed.minor, NEWEST_MINOR)
    in_force = {c.id: (c.level, rev) for c in REGISTRY if (rev := c.at(minor)) is not None}
    if level == BASELINE:
        return sorted((id_, rev) for id_, (lvl, rev) in in_force.items() if lvl == BASELINE)
    overridden = {o for lvl, rev in in_force.values() if lvl == RESTRICTED for o in rev.overrides}
    baseline = sorted((id_, rev) for id_, (lvl, rev) in in_force.items() if lvl == BASELINE and id_ not in overridden)
    restricted = sorted((id_, rev) for id_, (lvl, rev) in in_force.items() if lvl == RESTRICTED)
    return baseline + restricted


# --- public API ----------------------------------------------------------------------


def evaluate(pod_metadata: dict | None, pod_spec: dict | None, level: str,
             version: str | Version = "latest") -> Evaluation:
    """Evaluate one pod (metadata + spec) against a Pod Security level and policy version.

    InputError when a field the checks read does not have its API type."""
    meta, spec = pod_metadata or {}, pod_spec or {}
    try:
        shapes.check_pod(meta, spec)
    except shapes.ShapeError as err:
        raise InputError(None, f"cannot judge the pod: {err}") from None
    shown_version = str(parse_version(version))
    violations = [Violation(id_, *result) for id_, revision in checks_for(level, version)
                  if (result := revision.check(meta, spec)) is not None]
    message = forbidden_message(level, shown_version, violations) if violations else ""
    return Evaluation(not violations, level, shown_version, message, violations)


def strictest_level(pod_metadata: dict | None, pod_spec: dict | None,
                    version: str | Version = "latest") -> tuple[str, Evaluation | None]:
    """The strictest level the pod meets, and the evaluation that keeps it from the next one."""
    restricted = evaluate(pod_metadata, pod_spec, RESTRICTED, version)
    if restricted.allowed:
        return RESTRICTED, None
    baseline = evaluate(pod_metadata, pod_spec, BASELINE, version)
    if baseline.allowed:
        return BASELINE, restricted
    return PRIVILEGED, baseline
