"""What Pod Security admission writes into audit Events, in the upstream wording.

Formats follow k8s.io/pod-security-admission: admission/admission.go builds the messages,
api/constants.go names the annotation keys, and policy/check_*.go hold the forbidden-reason
strings mapped to check ids in REASON_TO_CHECK below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

MODES = ("enforce", "audit", "warn")

# Keys are "pod-security.kubernetes.io/<name>" in-tree, "<webhook name>/<name>" when Pod
# Security runs as the pod-security-webhook; both start with "pod-security".
ENFORCE_POLICY, AUDIT_VIOLATIONS, EXEMPT, ERROR = "enforce-policy", "audit-violations", "exempt", "error"
ANNOTATION_NAMES = (ENFORCE_POLICY, AUDIT_VIOLATIONS, EXEMPT, ERROR)

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
    return list(cached_violations(text, level))


# A log repeats the same few messages (every replica of a workload is denied alike), and
# splitting one costs a Python loop over its characters: parse each distinct text once.
@lru_cache(maxsize=4096)
def cached_violations(text: str, level: str) -> tuple[Violation, ...]:
    violations = []
    for item in split_top_level(text):
        reason, detail = item, ""
        paren = item.find(" (")
        if paren != -1 and item.endswith(")"):
            reason, detail = item[:paren], item[paren + 2 : -1]
        violations.append(Violation(reason, detail, check_id(reason, level)))
    return tuple(violations)


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


def pod_security_annotations(event: dict) -> dict[str, str]:
    """The Pod Security audit annotations of an event, keyed without their prefix."""
    found = {}
    for key, value in (event.get("annotations") or {}).items():
        prefix, _, name = key.rpartition("/")
        if prefix.startswith("pod-security") and name in ANNOTATION_NAMES:
            found[name] = value
    return found


def violation_messages(event: dict, annotations: dict[str, str]) -> Iterator[tuple[str, re.Match]]:
    """(mode, match of VIOLATES) for the denial and the audit annotation of one event."""
    status = event.get("responseStatus") or {}
    if status.get("code") == 403 and (match := VIOLATES.search(status.get("message") or "")):
        yield "enforce", match
    if match := VIOLATES.search(annotations.get(AUDIT_VIOLATIONS) or ""):
        yield "audit", match
