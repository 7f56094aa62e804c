"""Pod Security forensics from kube-apiserver audit logs.

Reads `audit.k8s.io/v1` Event objects (JSON lines, plain or gzip, or one `EventList`
document), finds what the Pod Security admission controller wrote into them, and
aggregates it per namespace and workload:

* enforce denials: `responseStatus.code` 403 with `... violates PodSecurity "LEVEL:VERSION": ...`;
* audit violations: the `pod-security.kubernetes.io/audit-violations` annotation
  (`would violate PodSecurity "LEVEL:VERSION": ...`);
* exemptions (`.../exempt`: namespace, user or runtimeClass) and policy errors (`.../error`).

Formats follow upstream k8s.io/pod-security-admission: admission/admission.go builds the
messages, api/constants.go names the annotation keys, and policy/check_*.go hold the
forbidden-reason strings mapped to check ids in REASON_TO_CHECK below.

Warn mode: kube-apiserver returns PodSecurity warnings to the client as `Warning`
headers and never writes them into audit events, so the log cannot show warn-only
violations. "warn" is kept in MODES for a log shipper that records them, but nothing
read from a plain audit log produces it.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from tracer.errors import InputError

MODES = ("enforce", "audit", "warn")

# --- upstream strings -------------------------------------------------------------------

# Keys are "pod-security.kubernetes.io/<name>" in-tree, "<webhook name>/<name>" when Pod
# Security runs as the pod-security-webhook; both start with "pod-security".
ENFORCE_POLICY, AUDIT_VIOLATIONS, EXEMPT, ERROR = "enforce-policy", "audit-violations", "exempt", "error"

# Denials: `pods "x" is forbidden: violates PodSecurity "L:V": ...` (in-tree) or
# `admission webhook ... denied the request: pod violates PodSecurity "L:V": ...` (webhook);
# audit annotation: `would violate PodSecurity "L:V": ...`.
VIOLATES = re.compile(r'violates? PodSecurity "(?P<level>[a-z]+):(?P<version>[^"]+)": (?P<violations>.*)\Z', re.S)

# ForbiddenReason strings of the upstream checks -> check id (policy/check_*.go).
REASON_TO_CHECK = {
    "allowPrivilegeEscalation != false": "allowPrivilegeEscalation",
    "forbidden AppArmor profile": "appArmorProfile",
    "forbidden AppArmor profiles": "appArmorProfile",
    "non-default capabilities": "capabilities_baseline",
    "unrestricted capabilities": "capabilities_restricted",
    "host namespaces": "hostNamespaces",
    "hostPath volumes": "hostPathVolumes",
    "hostPort": "hostPorts",
    "probe or lifecycle host": "hostProbesAndHostLifecycle",
    "privileged": "privileged",
    "procMount": "procMount",
    "restricted volume types": "restrictedVolumes",
    "runAsNonRoot != true": "runAsNonRoot",
    "runAsUser=0": "runAsUser",
    "forbidden seLinuxOptions": "seLinuxOptions",
    "forbidden sysctls": "sysctls",
    "hostProcess": "windowsHostProcess",
}
# Both seccomp checks report the reason "seccompProfile"; the level tells them apart
# (the restricted check overrides the baseline one at restricted level).
SECCOMP_CHECK_BY_LEVEL = {"baseline": "seccompProfile_baseline", "restricted": "seccompProfile_restricted"}


def check_id(reason: str, level: str) -> str:
    """Upstream check id for a forbidden reason; unknown reasons are kept verbatim."""
    if reason == "seccompProfile":
        return SECCOMP_CHECK_BY_LEVEL.get(level, "seccompProfile_baseline")
    return REASON_TO_CHECK.get(reason, reason)


@dataclass(frozen=True)
class Violation:
    reason: str
    detail: str
    check: str


def parse_violations(text: str, level: str) -> list[Violation]:
    """Split `reason (detail), reason, reason (detail)` (AggregateCheckResult.ForbiddenDetail)."""
    violations = []
    for item in split_top_level(text):
        reason, detail = item, ""
        paren = item.find(" (")
        if paren != -1 and item.endswith(")"):
            reason, detail = item[:paren], item[paren + 2:-1]
        violations.append(Violation(reason, detail, check_id(reason, level)))
    return violations


def split_top_level(text: str) -> list[str]:
    """Split on ", " outside parentheses and double quotes (details contain both)."""
    items, start, depth, quoted, escaped = [], 0, 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0 and text.startswith(", ", i):
            items.append(text[start:i])
            start = i + 2
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


# --- reading logs -----------------------------------------------------------------------

@dataclass(frozen=True)
class Malformed:
    file: str
    line: int
    problem: str


GZIP_MAGIC = b"\x1f\x8b"


def read_events(path: str | Path, malformed: list[Malformed]) -> Iterator[dict]:
    """Yield the audit Events in one log; bad lines go to `malformed`, never raise for them."""
    path = Path(path)
    _require_readable_file(path)
    source, first = str(path), True
    for number, raw in _numbered_lines(path, source, malformed):
        if not raw.strip():
            continue
        value = _json_or_none(raw)
        # A first line that is not JSON on its own may open a pretty-printed EventList or Event.
        if value is None and first and raw.lstrip().startswith(b"{"):
            if isinstance(document := _whole_document(path), dict):
                yield from _events_from_line(document, raw, number, source, malformed)
                return
        first = False
        yield from _events_from_line(value, raw, number, source, malformed)


def _json_or_none(raw: bytes):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _require_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an audit log file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from err


def _open(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def _numbered_lines(path: Path, source: str, malformed: list[Malformed]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) pairs; a truncated or corrupt gzip tail ends the file as one malformed entry."""
    number = 0
    with _open(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                yield number, raw
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            malformed.append(Malformed(source, number + 1, f"truncated or corrupt gzip stream: {err}"))


def _whole_document(path: Path):
    """Parse a file as one JSON document; None if it is not one."""
    try:
        with _open(path) as handle:
            return orjson.loads(handle.read())
    except (orjson.JSONDecodeError, EOFError, gzip.BadGzipFile, zlib.error):
        return None


def _events_from_line(value, raw: bytes, number: int, source: str, malformed: list[Malformed]) -> Iterator[dict]:
    if value is None:
        malformed.append(Malformed(source, number, f"not JSON: {_preview(raw)}"))
    elif isinstance(value, dict) and value.get("kind") == "EventList":
        yield from _event_list_items(value, source, number, malformed)
    elif (problem := _not_an_event(value)) is not None:
        malformed.append(Malformed(source, number, problem))
    else:
        yield value


def _event_list_items(document: dict, source: str, line: int, malformed: list[Malformed]) -> Iterator[dict]:
    items = document.get("items")
    if not isinstance(items, list):
        malformed.append(Malformed(source, line, "EventList without an items list"))
        return
    for index, item in enumerate(items):
        if (problem := _not_an_event(item)) is not None:
            malformed.append(Malformed(source, line, f"items[{index}]: {problem}"))
        else:
            yield item


def _not_an_event(value) -> str | None:
    """Why `value` is not an audit Event, or None when it is one."""
    if not isinstance(value, dict):
        return f"not an audit Event: a JSON {type(value).__name__}"
    kind, api_version = value.get("kind", "Event"), value.get("apiVersion", "audit.k8s.io/v1")
    if kind != "Event" or not str(api_version).startswith("audit.k8s.io/"):
        return f"not an audit Event: kind={kind!r} apiVersion={api_version!r}"
    if not value.get("auditID") or not value.get("stage"):
        return "not an audit Event: no auditID or stage"
    if event_time(value) is None:
        return "audit Event without a valid stageTimestamp or requestReceivedTimestamp"
    return None


def _preview(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- time -------------------------------------------------------------------------------

def parse_timestamp(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def event_time(event: dict) -> datetime | None:
    return parse_timestamp(event.get("stageTimestamp")) or parse_timestamp(event.get("requestReceivedTimestamp"))


def format_timestamp(stamp: datetime) -> str:
    """RFC3339 in UTC with microseconds, like the apiserver's MicroTime."""
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


DURATION = re.compile(r"(\d+)([smhdw])")
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an RFC3339 time, or a duration back from now like 30m, 2h, 7d, 1h30m."""
    text = text.strip()
    if re.fullmatch(r"(\d+[smhdw])+", text):
        seconds = sum(int(n) * SECONDS_PER_UNIT[unit] for n, unit in DURATION.findall(text))
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    stamp = parse_timestamp(text)
    if stamp is None:
        raise InputError("--since", f"{text!r} is neither an RFC3339 time nor a duration like 30m, 2h or 7d")
    return stamp


# --- workloads --------------------------------------------------------------------------

KIND_OF_RESOURCE = {
    "pods": "Pod", "replicasets": "ReplicaSet", "deployments": "Deployment", "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet", "jobs": "Job", "cronjobs": "CronJob",
    "replicationcontrollers": "ReplicationController", "podtemplates": "PodTemplate",
}
# The kube-controller-manager controller that created an object, and the kind it owns.
# The controller's name is the end of the username (system:serviceaccount:kube-system:<name>,
# with --use-service-account-credentials) or of the userAgent (".../<name>" without).
OWNER_KIND_OF_CONTROLLER = {
    "replicaset-controller": "ReplicaSet",
    "statefulset-controller": "StatefulSet",
    "daemon-set-controller": "DaemonSet",
    "job-controller": "Job",
    "replication-controller": "ReplicationController",
    "deployment-controller": "Deployment",
    "cronjob-controller": "CronJob",
}

# Generated names (k8s.io/apiserver names.SimpleNameGenerator and the controllers):
#   generateName pods:  <owner>-<5 chars of "bcdfghjklmnpqrstvwxz2456789">
#   ReplicaSet:         <deployment>-<pod-template-hash>; the hash is SafeEncodeString of a
#                       decimal uint32, so only the letters the digits map to: 4-9 b c d f
#   StatefulSet pods:   <statefulset>-<ordinal>
#   CronJob jobs:       <cronjob>-<scheduled time in minutes since the epoch, 8 digits today>
GENERATED_SUFFIX = re.compile(r"-[bcdfghjklmnpqrstvwxz2456789]{5}\Z")
POD_TEMPLATE_HASH = re.compile(r"-[4-9bcdf]{4,10}\Z")
ORDINAL = re.compile(r"-\d+\Z")
CRONJOB_SCHEDULE = re.compile(r"-\d{8,}\Z")
FORBIDDEN_NAME = re.compile(r'^[a-z.]+ "(?P<name>[^"]+)" is forbidden:')


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    kind: str
    name: str


def workload_of(event: dict) -> Workload:
    """The owning object of what the request created or changed."""
    ref = event.get("objectRef") or {}
    namespace = ref.get("namespace") or _request_metadata(event).get("namespace") or ""
    kind = KIND_OF_RESOURCE.get(ref.get("resource", ""), ref.get("resource") or "?")
    name, generated = _object_name(event)
    if kind == "Pod":
        kind, name = _pod_owner(event, name, generated)
    return Workload(namespace, *_top_owner(kind, name))


def _pod_owner(event: dict, pod_name: str, generated: bool) -> tuple[str, str]:
    """Owner of a pod: its controller ownerReference (Request level), else the creating
    controller plus the pod name with the controller's suffix stripped."""
    owner = _controller_reference(event)
    if owner:
        return owner
    controller_kind = OWNER_KIND_OF_CONTROLLER.get(_creating_controller(event))
    if controller_kind == "StatefulSet":
        return "StatefulSet", ORDINAL.sub("", pod_name)
    if not pod_name:  # Metadata level and allowed: the generated name was never logged
        return controller_kind or "Pod", "(name not logged)"
    if controller_kind or generated:
        # A trailing "-" means only the generateName prefix was logged: nothing to strip.
        base = pod_name[:-1] if pod_name.endswith("-") else GENERATED_SUFFIX.sub("", pod_name)
        return controller_kind or "Pod", base
    return "Pod", pod_name


def _top_owner(kind: str, name: str) -> tuple[str, str]:
    """Walk up the well-known chains: ReplicaSet -> Deployment, Job -> CronJob."""
    if kind == "ReplicaSet" and POD_TEMPLATE_HASH.search(name):
        return "Deployment", POD_TEMPLATE_HASH.sub("", name)
    if kind == "Job" and CRONJOB_SCHEDULE.search(name):
        return "CronJob", CRONJOB_SCHEDULE.sub("", name)
    return kind, name


def _object_name(event: dict) -> tuple[str, bool]:
    """(name, generated). The audit objectRef lacks the name when the client sent only
    generateName; the name is then in the 403 message or the logged objects."""
    explicit = (event.get("objectRef") or {}).get("name")
    if explicit:
        return explicit, False
    status = event.get("responseStatus") or {}
    match = FORBIDDEN_NAME.match(status.get("message") or "")
    candidates = [
        (status.get("details") or {}).get("name"),
        match and match["name"],
        ((event.get("responseObject") or {}).get("metadata") or {}).get("name"),
        _request_metadata(event).get("name"),
        _request_metadata(event).get("generateName"),
    ]
    return next((name for name in candidates if name), ""), True


def _request_metadata(event: dict) -> dict:
    return (event.get("requestObject") or {}).get("metadata") or {}


def _controller_reference(event: dict) -> tuple[str, str] | None:
    for ref in _request_metadata(event).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") and ref.get("name"):
            return ref["kind"], ref["name"]
    return None


def _creating_controller(event: dict) -> str:
    username = (event.get("user") or {}).get("username", "")
    agent = event.get("userAgent", "")
    for candidate in (username.rsplit(":", 1)[-1], agent.rsplit("/", 1)[-1].rsplit(":", 1)[-1]):
        if candidate in OWNER_KIND_OF_CONTROLLER:
            return candidate
    return ""


def requester(event: dict) -> str:
    """Who asked: the authenticated user, and whom they impersonated."""
    user = (event.get("user") or {}).get("username") or "(unknown)"
    impersonated = (event.get("impersonatedUser") or {}).get("username")
    return f"{user} as {impersonated}" if impersonated else user


# --- aggregation ------------------------------------------------------------------------

@dataclass
class Tally:
    """How often something was seen, when, by whom and with which client."""
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    users: set[str] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    details: list[str] = field(default_factory=list)

    def add(self, when: datetime, event: dict, detail: str = "") -> None:
        self.count += 1
        self.first_seen = when if self.first_seen is None else min(self.first_seen, when)
        self.last_seen = when if self.last_seen is None else max(self.last_seen, when)
        self.users.add(requester(event))
        if event.get("userAgent"):
            self.user_agents.add(event["userAgent"])
        if detail and detail not in self.details:
            self.details.append(detail)

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "first_seen": format_timestamp(self.first_seen),
            "last_seen": format_timestamp(self.last_seen),
            "users": sorted(self.users),
            "user_agents": sorted(self.user_agents),
        }


@dataclass(frozen=True, order=True)
class FindingKey:
    workload: Workload
    check: str
    mode: str
    level: str
    version: str


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    events_read: int = 0
    malformed: list[Malformed] = field(default_factory=list)
    findings: dict[FindingKey, Tally] = field(default_factory=dict)
    exemptions: dict[tuple[Workload, str], Tally] = field(default_factory=dict)
    errors: dict[tuple[Workload, str], Tally] = field(default_factory=dict)

    def to_dict(self, suggest: bool = False) -> dict:
        return {
            "files": self.files,
            "events_read": self.events_read,
            "malformed": [{"file": m.file, "line": m.line, "problem": m.problem} for m in self.malformed],
            "findings": [_finding_dict(key, tally, suggest) for key, tally in sorted(self.findings.items())],
            "exemptions": [_workload_dict(w) | {"reason": reason} | t.as_dict()
                           for (w, reason), t in sorted(self.exemptions.items())],
            "errors": [_workload_dict(w) | {"error": message} | t.as_dict()
                       for (w, message), t in sorted(self.errors.items())],
        }


def _workload_dict(workload: Workload) -> dict:
    return {"namespace": workload.namespace, "workload": workload.name, "kind": workload.kind}


def _finding_dict(key: FindingKey, tally: Tally, suggest: bool) -> dict:
    return _workload_dict(key.workload) | {
        "check": key.check, "level": key.level, "version": key.version, "mode": key.mode,
        "details": tally.details,
        "suggestion": suggestion(key.check, tally.details) if suggest else None,
    } | tally.as_dict()


# Admission outcomes are in the final stage only; RequestReceived/ResponseStarted copies
# of the same request would count it twice.
FINAL_STAGES = {"ResponseComplete", "Panic"}


def analyze(paths: Iterable[str | Path], namespaces: Iterable[str] = (), since: datetime | None = None) -> Report:
    """Read every log and tally its Pod Security outcomes."""
    report, wanted, seen = Report(), set(namespaces), set()
    for path in paths:
        report.files.append(str(path))
        for event in read_events(path, report.malformed):
            report.events_read += 1
            identity = (event["auditID"], event["stage"])
            if event["stage"] not in FINAL_STAGES or identity in seen:
                continue
            seen.add(identity)
            when = event_time(event)
            if since and when < since:
                continue
            workload = workload_of(event)
            if wanted and workload.namespace not in wanted:
                continue
            _tally_event(report, event, workload, when)
    return report


def _tally_event(report: Report, event: dict, workload: Workload, when: datetime) -> None:
    annotations = pod_security_annotations(event)
    for mode, match in _violation_messages(event, annotations):
        level, version = match["level"], match["version"]
        for violation in parse_violations(match["violations"], level):
            key = FindingKey(workload, violation.check, mode, level, version)
            report.findings.setdefault(key, Tally()).add(when, event, violation.detail)
    if EXEMPT in annotations:
        report.exemptions.setdefault((workload, annotations[EXEMPT]), Tally()).add(when, event)
    if ERROR in annotations:
        report.errors.setdefault((workload, annotations[ERROR]), Tally()).add(when, event)


def pod_security_annotations(event: dict) -> dict[str, str]:
    """The Pod Security audit annotations of an event, keyed without their prefix."""
    found = {}
    for key, value in (event.get("annotations") or {}).items():
        prefix, _, name = key.rpartition("/")
        if prefix.startswith("pod-security") and name in (ENFORCE_POLICY, AUDIT_VIOLATIONS, EXEMPT, ERROR):
            found[name] = value
    return found


def _violation_messages(event: dict, annotations: dict[str, str]) -> Iterator[tuple[str, re.Match]]:
    status = event.get("responseStatus") or {}
    if status.get("code") == 403 and (match := VIOLATES.search(status.get("message") or "")):
        yield "enforce", match
    if match := VIOLATES.search(annotations.get(AUDIT_VIOLATIONS, "")):
        yield "audit", match


# --- suggestions ------------------------------------------------------------------------

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
    return (f"{_target(details)}: remove {extra} from securityContext.capabilities.add "
            "(keep only what tracer recorded in use), or exempt the workload")


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
    return (f"{_target(details)}: remove securityContext.privileged: true (GPUs come from the device plugin; "
            "add back only the capabilities tracer recorded), or exempt the namespace")


def _suggest_host_namespaces(details: list[str]) -> str:
    used = sorted({part.split("=")[0].strip() for d in details for part in d.split(",") if part.strip()})
    return f"remove {_listed([u + ': true' for u in used], 'hostNetwork/hostPID/hostIPC')} from the pod spec, " \
           "or exempt the namespace"


def _suggest_host_path(details: list[str]) -> str:
    volumes = _listed([f'"{v}"' for v in _quoted_in(details, VOLUME_LIST)], "the hostPath volumes")
    return (f"replace {volumes} with a PersistentVolumeClaim or CSI volume, or exempt the namespace "
            "(PodSecurityConfiguration exemptions.namespaces, or enforce=privileged) for node agents")


def _suggest_restricted_volumes(details: list[str]) -> str:
    volumes = _listed([f'"{v}"' for v in _quoted_in(details, VOLUME_LIST)], "the listed volumes")
    return (f"replace {volumes} with configMap, secret, emptyDir, projected, downwardAPI, "
            "persistentVolumeClaim, ephemeral or csi volumes")


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
