"""Pod Security Standards evaluator, faithful to upstream pod-security-admission.

Laid out like upstream's `policy/`: `versions` parses levels and policy versions,
`gocompat` reads a pod as Go's typed structs would and words details as upstream does,
`baseline` and `restricted` hold one function per revision of each `policy/check_*.go`
(same check id, forbidden reason, detail string and policy versions), and `registry` lists
every check with the versions its revisions apply to. This module is the API: `evaluate`
one pod at a level and version, or find its `strictest_level`; a version newer than every
check (and `latest`) evaluates as the newest one, while the message keeps the version that
was asked for.

Pods are plain dicts as decoded from YAML/JSON (`metadata`, `spec`), not typed objects.
`evaluate` first checks that every field the checks read has its API type (`shapes`), so a
malformed pod is an `InputError`, never "allowed"; read manifests with `manifests` (YAML 1.1,
as Kubernetes reads them) so that `privileged: yes` is the boolean the API server sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer.errors import InputError
from tracer.kube import shapes
from tracer.kube.pss.registry import NEWEST_MINOR, checks_for
from tracer.kube.pss.restricted import VOLUME_SOURCES
from tracer.kube.pss.versions import BASELINE, LEVELS, PRIVILEGED, RESTRICTED, Version, parse_level, parse_version

# The API the callers use: what this module defines, and the names of its parts they need.
__all__ = [
    "LEVELS",
    "NEWEST_MINOR",
    "VOLUME_SOURCES",
    "Evaluation",
    "Version",
    "Violation",
    "evaluate",
    "parse_level",
    "parse_version",
    "strictest_level",
]


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


def evaluate(
    pod_metadata: dict | None, pod_spec: dict | None, level: str, version: str | Version = "latest"
) -> Evaluation:
    """Evaluate one pod (metadata + spec) against a Pod Security level and policy version.

    InputError when a field the checks read does not have its API type."""
    meta, spec = pod_metadata or {}, pod_spec or {}
    try:
        shapes.check_pod(meta, spec)
    except shapes.ShapeError as err:
        raise InputError(None, f"cannot judge the pod: {err}") from None
    shown_version = str(parse_version(version))
    violations = [
        Violation(id_, *result)
        for id_, revision in checks_for(level, version)
        if (result := revision.check(meta, spec)) is not None
    ]
    message = forbidden_message(level, shown_version, violations) if violations else ""
    return Evaluation(not violations, level, shown_version, message, violations)


def strictest_level(
    pod_metadata: dict | None, pod_spec: dict | None, version: str | Version = "latest"
) -> tuple[str, Evaluation | None]:
    """The strictest level the pod meets, and the evaluation that keeps it from the next one."""
    restricted = evaluate(pod_metadata, pod_spec, RESTRICTED, version)
    if restricted.allowed:
        return RESTRICTED, None
    baseline = evaluate(pod_metadata, pod_spec, BASELINE, version)
    if baseline.allowed:
        return BASELINE, restricted
    return PRIVILEGED, baseline
