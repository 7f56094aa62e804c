"""Pod Security forensics from kube-apiserver audit logs.

Reads `audit.k8s.io/v1` Event objects (JSON lines, plain or gzip, or one `EventList`
document), finds what the Pod Security admission controller wrote into them, and
aggregates it per namespace and workload:

* enforce denials: `responseStatus.code` 403 with `... violates PodSecurity "LEVEL:VERSION": ...`;
* audit violations: the `pod-security.kubernetes.io/audit-violations` annotation
  (`would violate PodSecurity "LEVEL:VERSION": ...`);
* exemptions (`.../exempt`: namespace, user or runtimeClass) and policy errors (`.../error`).

The parts, in the order data flows through them:

* read.py: files, gzip, lines, EventList documents, limits, "is this an audit log", and
  which lines are parsed in full (only those that can hold a Pod Security outcome; see its
  docstring for the exact rule and what it means for malformed-line reports);
* shape.py: what a parsed value must look like to be analysed (a wrongly typed field makes
  the event a malformed entry, never a traceback);
* events.py: the upstream annotation keys, messages and forbidden reasons;
* attribute.py: the owning workload and the requester of an event;
* report.py: `analyze` and the report (counts only: memory does not grow with the log);
* suggest.py: the smallest change that clears a finding (`--suggest`).

Warn mode: kube-apiserver returns PodSecurity warnings to the client as `Warning`
headers and never writes them into audit events, so the log cannot show warn-only
violations. "warn" is kept in MODES for a log shipper that records them, but nothing
read from a plain audit log produces it.
"""

from tracer.kube.audit.attribute import Workload, requester, workload_of
from tracer.kube.audit.events import (
    MODES,
    REASON_TO_CHECK,
    VIOLATES,
    Violation,
    check_id,
    parse_violations,
    pod_security_annotations,
    split_top_level,
)
from tracer.kube.audit.read import DEFAULT_LIMITS, AuditLog, Limits, Malformed
from tracer.kube.audit.report import FINAL_STAGES, FindingKey, Report, Tally, analyze
from tracer.kube.audit.suggest import SUGGESTERS, suggestion
from tracer.kube.audit.timestamps import event_time, format_timestamp, parse_since, parse_timestamp

__all__ = [
    "DEFAULT_LIMITS",
    "FINAL_STAGES",
    "MODES",
    "REASON_TO_CHECK",
    "SUGGESTERS",
    "VIOLATES",
    "AuditLog",
    "FindingKey",
    "Limits",
    "Malformed",
    "Report",
    "Tally",
    "Violation",
    "Workload",
    "analyze",
    "check_id",
    "event_time",
    "format_timestamp",
    "parse_since",
    "parse_timestamp",
    "parse_violations",
    "pod_security_annotations",
    "requester",
    "split_top_level",
    "suggestion",
    "workload_of",
]
