"""The analysis: Pod Security outcomes of audit Events, tallied per workload and check.

Memory holds counts, never events: one Tally per (workload, check, mode, policy), per
exemption and per policy error, plus the digests of the counted events (seen.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tracer.kube.audit.attribute import Workload, requester, workload_of
from tracer.kube.audit.events import ERROR, EXEMPT, cached_violations, pod_security_annotations, violation_messages
from tracer.kube.audit.read import DEFAULT_LIMITS, AuditLog, Limits, Malformed
from tracer.kube.audit.seen import SeenDigests
from tracer.kube.audit.suggest import suggestion
from tracer.kube.audit.timestamps import event_time, format_timestamp

# Admission outcomes are in the final stage only; RequestReceived/ResponseStarted copies
# of the same request would count it twice.
FINAL_STAGES = {"ResponseComplete", "Panic"}


@dataclass
class Tally:
    """How often something was seen, when, by whom and with which client."""

    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    users: set[str] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    details: list[str] = field(default_factory=list)

    def add(self, when: datetime, user: str, user_agent: str, detail: str = "") -> None:
        self.count += 1
        if self.first_seen is None or when < self.first_seen:
            self.first_seen = when
        if self.last_seen is None or when > self.last_seen:
            self.last_seen = when
        self.users.add(user)
        if user_agent:
            self.user_agents.add(user_agent)
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
    malformed_lines: int = 0  # all of them; `malformed` lists the first 1,000 of a file
    findings: dict[FindingKey, Tally] = field(default_factory=dict)
    exemptions: dict[tuple[Workload, str], Tally] = field(default_factory=dict)
    errors: dict[tuple[Workload, str], Tally] = field(default_factory=dict)

    def to_dict(self, suggest: bool = False) -> dict:
        return {
            "files": self.files,
            "events_read": self.events_read,
            "malformed": [{"file": m.file, "line": m.line, "problem": m.problem} for m in self.malformed],
            "findings": [_finding_dict(key, tally, suggest) for key, tally in sorted(self.findings.items())],
            "exemptions": [
                _workload_dict(w) | {"reason": reason} | t.as_dict()
                for (w, reason), t in sorted(self.exemptions.items())
            ],
            "errors": [
                _workload_dict(w) | {"error": message} | t.as_dict() for (w, message), t in sorted(self.errors.items())
            ],
        }


def _workload_dict(workload: Workload) -> dict:
    return {"namespace": workload.namespace, "workload": workload.name, "kind": workload.kind}


def _finding_dict(key: FindingKey, tally: Tally, suggest: bool) -> dict:
    return (
        _workload_dict(key.workload)
        | {
            "check": key.check,
            "level": key.level,
            "version": key.version,
            "mode": key.mode,
            "details": tally.details,
            "suggestion": suggestion(key.check, tally.details) if suggest else None,
        }
        | tally.as_dict()
    )


def analyze(
    paths: Iterable[str | Path],
    namespaces: Iterable[str] = (),
    since: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Report:
    """Read every log and tally its Pod Security outcomes."""
    report = Report()
    tally = _Tallier(report, set(namespaces), since)
    for path in paths:
        report.files.append(str(path))
        log = AuditLog(path, limits, report.malformed)
        for event in log.events():
            tally.add(event)
        report.events_read += log.events_read
        report.malformed_lines += log.malformed_lines
    return report


class _Tallier:
    def __init__(self, report: Report, namespaces: set[str], since: datetime | None):
        self.report, self.namespaces, self.since = report, namespaces, since
        self.seen = SeenDigests()
        self._tallies: dict[tuple, list[tuple[Tally, str]]] = {}

    def add(self, event: dict) -> None:
        if event["stage"] not in FINAL_STAGES or (outcomes := pod_security_outcomes(event)) is None:
            return
        if not self.seen.add((event["auditID"], event["stage"])):
            return
        when = event_time(event)
        if self.since and when < self.since:
            return
        workload = workload_of(event)
        if self.namespaces and workload.namespace not in self.namespaces:
            return
        user, user_agent = requester(event), event.get("userAgent") or ""
        for tally, detail in self._tallies_of(workload, outcomes):
            tally.add(when, user, user_agent, detail)

    def _tallies_of(self, workload: Workload, outcomes: tuple) -> list[tuple[Tally, str]]:
        """(tally, detail) for each finding, exemption and error of these outcomes. The
        replicas of a workload repeat the same outcomes: work them out once."""
        if (found := self._tallies.get((workload, outcomes))) is not None:
            return found
        verdicts, exempt, error = outcomes
        report, tallies = self.report, []
        for mode, level, version, violations in verdicts:
            for violation in cached_violations(violations, level):
                key = FindingKey(workload, violation.check, mode, level, version)
                tallies.append((_tally(report.findings, key), violation.detail))
        if exempt is not None:
            tallies.append((_tally(report.exemptions, (workload, exempt)), ""))
        if error is not None:
            tallies.append((_tally(report.errors, (workload, error)), ""))
        if len(self._tallies) >= 4096:  # a cache, not a record: keep it small
            self._tallies.clear()
        self._tallies[workload, outcomes] = tallies
        return tallies


def pod_security_outcomes(event: dict) -> tuple | None:
    """((mode, level, version, violations) for the denial and the audit annotation,
    exemption reason, policy error), or None when the event has none of them."""
    annotations = pod_security_annotations(event)
    verdicts = tuple(
        (mode, match["level"], match["version"], match["violations"])
        for mode, match in violation_messages(event, annotations)
    )
    exempt, error = annotations.get(EXEMPT), annotations.get(ERROR)
    if not verdicts and exempt is None and error is None:
        return None
    return verdicts, exempt, error


def _tally(tallies: dict, key) -> Tally:
    if (found := tallies.get(key)) is None:
        found = tallies[key] = Tally()
    return found
