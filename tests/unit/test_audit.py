"""`tracer audit`: Pod Security findings from kube-apiserver audit logs."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from support.paths import FIXTURES as REPO_FIXTURES
from tracer.cli import main
from tracer.errors import InputError
from tracer.kube import audit

FIXTURES = REPO_FIXTURES / "audit"
PLAIN = FIXTURES / "kube-apiserver-audit.log"
GZIPPED = FIXTURES / "kube-apiserver-audit-2024-06-04.log.gz"
EVENT_LIST = FIXTURES / "eventlist.json"
ALL = [PLAIN, GZIPPED, EVENT_LIST]


def findings(report: audit.Report, workload: str, mode: str | None = None) -> dict[str, dict]:
    """check -> finding dict, for one workload (and mode)."""
    return {
        f["check"]: f
        for f in report.to_dict(suggest=True)["findings"]
        if f["workload"] == workload and (mode is None or f["mode"] == mode)
    }


def write_events(path: Path, events: list[dict], extra_lines: list[bytes] = ()) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b"".join(extra_lines))
    return path


def pod_denial(when: str, pod: str, namespace: str = "team", policy: str = "restricted:latest") -> dict:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"id-{pod}-{when}",
        "stage": "ResponseComplete",
        "verb": "create",
        "user": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "objectRef": {"resource": "pods", "namespace": namespace, "apiVersion": "v1"},
        "responseStatus": {
            "status": "Failure",
            "code": 403,
            "reason": "Forbidden",
            "message": f'pods "{pod}" is forbidden: violates PodSecurity "{policy}": '
            'allowPrivilegeEscalation != false (container "app" must set '
            "securityContext.allowPrivilegeEscalation=false)",
        },
        "requestReceivedTimestamp": when,
        "stageTimestamp": when,
        "annotations": {"pod-security.kubernetes.io/enforce-policy": policy},
    }


# --- parsing the upstream strings -------------------------------------------------------


def test_violation_list_splits_on_top_level_commas_only():
    text = (
        'host namespaces (hostNetwork=true, hostPID=true), privileged (container "x" must not set '
        'securityContext.privileged=true), unrestricted capabilities (container "x" must set '
        'securityContext.capabilities.drop=["ALL"]; container "x" must not include "A", "B" in '
        "securityContext.capabilities.add), seccompProfile"
    )
    parsed = audit.parse_violations(text, "restricted")
    assert [v.check for v in parsed] == [
        "hostNamespaces",
        "privileged",
        "capabilities_restricted",
        "seccompProfile_restricted",
    ]
    assert parsed[0].detail == "hostNetwork=true, hostPID=true"
    assert parsed[3].detail == ""


@pytest.mark.parametrize(
    "reason,level,check",
    [
        ("seccompProfile", "baseline", "seccompProfile_baseline"),
        ("seccompProfile", "restricted", "seccompProfile_restricted"),
        ("non-default capabilities", "restricted", "capabilities_baseline"),
        ("forbidden AppArmor profiles", "baseline", "appArmorProfile"),
        ("hostPort", "baseline", "hostPorts"),
        ("some future reason", "baseline", "some future reason"),
    ],
)
def test_reason_to_check(reason, level, check):
    assert audit.check_id(reason, level) == check


@pytest.mark.parametrize(
    "event,expected",
    [
        # replicaset-controller pod: strip the random suffix and the pod-template-hash
        (
            {
                "user": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "objectRef": {"resource": "pods", "namespace": "nim"},
                "responseStatus": {"code": 403, "details": {"name": "web-7d9f8c6b5-x2q7v"}},
            },
            ("Deployment", "web"),
        ),
        # statefulset pods have explicit names: strip the ordinal
        (
            {
                "user": {"username": "system:serviceaccount:kube-system:statefulset-controller"},
                "objectRef": {"resource": "pods", "namespace": "nim", "name": "triton-12"},
            },
            ("StatefulSet", "triton"),
        ),
        # without service-account credentials the controller is named at the end of the user agent
        (
            {
                "user": {"username": "system:kube-controller-manager"},
                "userAgent": "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/job-controller",
                "objectRef": {"resource": "pods", "namespace": "b"},
                "responseStatus": {"message": 'pods "eval-28624440-k2x9z" is forbidden: violates PodSecurity ...'},
            },
            ("CronJob", "eval"),
        ),
        # a bare pod with an explicit name stays itself
        (
            {"user": {"username": "alice"}, "objectRef": {"resource": "pods", "namespace": "n", "name": "debug-abcde"}},
            ("Pod", "debug-abcde"),
        ),
        # ownerReferences (Request level) win over name shapes; generateName prefix is not stripped
        (
            {
                "user": {"username": "bob"},
                "objectRef": {"resource": "pods", "namespace": "n"},
                "requestObject": {
                    "metadata": {
                        "generateName": "agent-",
                        "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": True}],
                    }
                },
            },
            ("DaemonSet", "agent"),
        ),
        (
            {
                "user": {"username": "system:serviceaccount:kube-system:deployment-controller"},
                "objectRef": {"resource": "replicasets", "namespace": "n", "name": "api-5c6d7f8b94"},
            },
            ("Deployment", "api"),
        ),
    ],
)
def test_workload_of(event, expected):
    workload = audit.workload_of(event)
    assert (workload.kind, workload.name) == expected


# --- the fixtures -----------------------------------------------------------------------


def test_fixture_totals():
    report = audit.analyze(ALL)
    result = report.to_dict()
    assert result["events_read"] == 31
    assert len(result["malformed"]) == 4
    assert len(result["findings"]) == 34
    assert {(f["namespace"], f["kind"], f["workload"]) for f in result["findings"]} == {
        ("nim", "Deployment", "meta-llama3-8b-instruct"),
        ("nim", "Pod", "debug-shell"),
        ("inference", "StatefulSet", "triton"),
        ("nim-batch", "CronJob", "nightly-eval"),
        ("monitoring", "DaemonSet", "dcgm-exporter"),
    }


def test_denials_and_audit_violations_are_counted_per_mode():
    nim = audit.analyze([PLAIN])
    enforce = findings(nim, "meta-llama3-8b-instruct", "enforce")
    assert set(enforce) == {
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "runAsNonRoot",
        "seccompProfile_restricted",
    }
    assert {f["count"] for f in enforce.values()} == {6}
    # deployment create + replicaset create + 6 pod creates; the RequestReceived copy is not counted
    assert findings(nim, "meta-llama3-8b-instruct", "audit")["runAsNonRoot"]["count"] == 8
    triton = findings(nim, "triton")
    assert {f["mode"] for f in triton.values()} == {"audit"}
    assert (triton["restrictedVolumes"]["level"], triton["restrictedVolumes"]["version"]) == ("restricted", "v1.30")


def test_first_last_seen_and_users():
    report = audit.analyze([PLAIN])
    denied = findings(report, "meta-llama3-8b-instruct", "enforce")["runAsNonRoot"]
    assert denied["first_seen"] == "2024-06-03T09:14:02.359000Z"
    assert denied["last_seen"] == "2024-06-03T09:26:33.359000Z"
    assert denied["users"] == ["system:serviceaccount:kube-system:replicaset-controller"]
    audited = findings(report, "meta-llama3-8b-instruct", "audit")["runAsNonRoot"]
    assert audited["users"] == [
        "alice@example.com",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:serviceaccount:kube-system:replicaset-controller",
    ]
    assert "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350" in audited["user_agents"]


def test_event_list_with_impersonation_and_policy_error():
    report = audit.analyze([EVENT_LIST]).to_dict()
    debug = [f for f in report["findings"] if f["workload"] == "debug-shell"]
    assert {f["check"] for f in debug} >= {"privileged", "hostNamespaces"}
    assert debug[0]["users"] == ["admin@example.com as bob@example.com"]
    assert report["errors"][0]["namespace"] == "sandbox"
    assert report["errors"][0]["error"].startswith("Failed to parse policy:")


def test_exemptions_are_listed_not_findings():
    report = audit.analyze([PLAIN]).to_dict()
    assert report["exemptions"] == [
        {
            "namespace": "gpu-operator",
            "kind": "DaemonSet",
            "workload": "nvidia-dcgm-exporter",
            "reason": "namespace",
            "count": 3,
            "first_seen": "2024-06-03T11:30:00.430000Z",
            "last_seen": "2024-06-03T11:30:00.790000Z",
            "users": ["system:serviceaccount:kube-system:daemon-set-controller"],
            "user_agents": [
                "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/"
                "system:serviceaccount:kube-system:daemon-set-controller"
            ],
        }
    ]
    assert not [f for f in report["findings"] if f["namespace"] == "gpu-operator"]


def test_malformed_lines_are_reported_with_file_and_line():
    malformed = audit.analyze([PLAIN, GZIPPED]).to_dict()["malformed"]
    assert [(Path(m["file"]).name, m["line"]) for m in malformed] == [
        (PLAIN.name, 5),
        (PLAIN.name, 11),
        (PLAIN.name, 18),
        (GZIPPED.name, 7),
    ]
    assert malformed[0]["problem"].startswith("not JSON")
    assert malformed[2]["problem"].startswith("not an audit Event")
    assert "gzip" in malformed[3]["problem"]


def test_gzip_detected_by_content_not_name(tmp_path):
    renamed = tmp_path / "audit.txt"
    renamed.write_bytes(GZIPPED.read_bytes())
    report = audit.analyze([renamed]).to_dict()
    assert report["events_read"] == 6
    assert {f["workload"] for f in report["findings"]} == {"nightly-eval", "dcgm-exporter"}


# --- filters ----------------------------------------------------------------------------


def test_namespace_filter():
    report = audit.analyze(ALL, namespaces=["monitoring"]).to_dict()
    assert {f["namespace"] for f in report["findings"]} == {"monitoring"}
    assert report["events_read"] == 31  # filters do not change what was read


def test_since_filter_rfc3339_and_relative():
    since = audit.parse_since("2024-06-04T00:00:00Z")
    assert {f["namespace"] for f in audit.analyze(ALL, since=since).to_dict()["findings"]} == {
        "nim-batch",
        "monitoring",
        "nim",
    }
    now = datetime(2024, 6, 4, 9, 0, tzinfo=timezone.utc)
    assert audit.parse_since("7h", now) == datetime(2024, 6, 4, 2, 0, tzinfo=timezone.utc)
    assert audit.parse_since("1h30m", now) == datetime(2024, 6, 4, 7, 30, tzinfo=timezone.utc)
    assert audit.parse_since("2d", now) == datetime(2024, 6, 2, 9, 0, tzinfo=timezone.utc)
    with pytest.raises(InputError):
        audit.parse_since("last tuesday")


# --- suggestions ------------------------------------------------------------------------


def test_suggestions_name_containers_and_values():
    report = audit.analyze(ALL)
    nim = findings(report, "meta-llama3-8b-instruct", "enforce")
    assert (
        nim["allowPrivilegeEscalation"]["suggestion"]
        == 'container "nim-llm": set securityContext.allowPrivilegeEscalation: false'
    )
    assert "RuntimeDefault" in nim["seccompProfile_restricted"]["suggestion"]
    assert "tracer generate" in nim["seccompProfile_restricted"]["suggestion"]
    assert "runAsNonRoot: true and a non-zero runAsUser" in nim["runAsNonRoot"]["suggestion"]
    batch = findings(report, "nightly-eval", "enforce")
    assert 'drop: ["ALL"]' in batch["capabilities_restricted"]["suggestion"]
    assert "remove SYS_PTRACE" in batch["capabilities_restricted"]["suggestion"]
    assert "NET_BIND_SERVICE" in batch["capabilities_restricted"]["suggestion"]
    dcgm = findings(report, "dcgm-exporter")
    assert '"pod-gpu-resources", "device-metrics"' in dcgm["hostPathVolumes"]["suggestion"]
    assert "exempt" in dcgm["hostPathVolumes"]["suggestion"]
    assert findings(report, "debug-shell")["hostNamespaces"]["suggestion"].startswith("remove hostPID: true")


def test_suggestion_is_null_without_flag():
    assert {f["suggestion"] for f in audit.analyze([GZIPPED]).to_dict()["findings"]} == {None}


# --- reading edge cases -----------------------------------------------------------------


def test_single_line_event_list_and_blank_lines(tmp_path):
    doc = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [pod_denial("2024-06-01T10:00:00Z", "app-7d9f8c6b5-x2q7v"), {"kind": "Pod"}],
    }
    log = tmp_path / "list.json"
    log.write_bytes(b"\n" + orjson.dumps(doc) + b"\n\n")
    report = audit.analyze([log]).to_dict()
    assert report["events_read"] == 1
    assert report["malformed"] == [
        {
            "file": str(log),
            "line": 2,
            "problem": "items[1]: not an audit Event: kind='Pod' apiVersion='audit.k8s.io/v1'",
        }
    ]
    assert report["findings"][0]["workload"] == "app"


def test_pretty_printed_single_event(tmp_path):
    log = tmp_path / "event.json"
    log.write_text(json.dumps(pod_denial("2024-06-01T10:00:00Z", "solo"), indent=2))
    report = audit.analyze([log]).to_dict()
    assert (report["events_read"], report["malformed"]) == (1, [])
    assert report["findings"][0]["workload"] == "solo"


def test_explicit_unconfined_seccomp_suggestion():
    text = audit.suggestion(
        "seccompProfile_baseline",
        ['pod and container "x" must not set securityContext.seccompProfile.type to "Unconfined"'],
    )
    assert text.startswith(
        'spec.securityContext and container "x": change seccompProfile.type from Unconfined to RuntimeDefault'
    )


def test_duplicate_audit_ids_across_files_count_once(tmp_path):
    event = pod_denial("2024-06-01T10:00:00Z", "app-7d9f8c6b5-x2q7v")
    first = write_events(tmp_path / "a.log", [event])
    rotated = tmp_path / "a.log.1.gz"
    rotated.write_bytes(gzip.compress(orjson.dumps(event) + b"\n"))
    report = audit.analyze([first, rotated]).to_dict()
    assert report["events_read"] == 2
    assert report["findings"][0]["count"] == 1


def test_webhook_denial_and_prefixed_annotations(tmp_path):
    event = pod_denial("2024-06-01T10:00:00Z", "app-7d9f8c6b5-x2q7v")
    event["responseStatus"]["message"] = (
        'admission webhook "pod-security-webhook.kubernetes.io" denied the request: '
        'pod violates PodSecurity "baseline:v1.29": privileged (container "app" '
        "must not set securityContext.privileged=true)"
    )
    event["annotations"] = {
        "pod-security-webhook.kubernetes.io/audit-violations": 'would violate PodSecurity "restricted:v1.29": seccompProfile (pod or container "app" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    }
    report = audit.analyze([write_events(tmp_path / "w.log", [event])]).to_dict()
    assert {(f["check"], f["mode"], f["level"]) for f in report["findings"]} == {
        ("privileged", "enforce", "baseline"),
        ("seccompProfile_restricted", "audit", "restricted"),
    }


# --- the command ------------------------------------------------------------------------


def test_cli_json_shape_and_exit_code(capsys):
    assert main(["audit", "--format", "json", "--suggest", *map(str, ALL)]) == 1
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"files", "events_read", "malformed", "findings", "exemptions", "errors"}
    assert result["files"] == [str(p) for p in ALL]
    finding = result["findings"][0]
    assert {
        "namespace",
        "workload",
        "kind",
        "check",
        "level",
        "version",
        "mode",
        "count",
        "first_seen",
        "last_seen",
        "users",
        "details",
        "suggestion",
    } <= set(finding)
    assert {f["mode"] for f in result["findings"]} <= set(audit.MODES)
    assert set(result["malformed"][0]) == {"file", "line", "problem"}


def test_cli_text_output(capsys):
    assert main(["audit", "--suggest", "-n", "monitoring", str(GZIPPED)]) == 1
    out = capsys.readouterr().out
    assert "namespace monitoring" in out
    assert "DaemonSet dcgm-exporter" in out
    assert "kube-apiserver-audit-2024-06-04.log.gz:7: truncated or corrupt gzip stream" in out
    assert "to clear:" in out and 'container "dcgm-exporter": remove ports[*].hostPort' in out


def test_cli_exit_zero_without_findings(tmp_path, capsys):
    clean = pod_denial("2024-06-01T10:00:00Z", "app-7d9f8c6b5-x2q7v")
    clean["responseStatus"] = {"code": 201}
    assert main(["audit", str(write_events(tmp_path / "clean.log", [clean], [b"garbage\n"]))]) == 0
    assert "1 malformed; 0 findings" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make_path,problem",
    [
        (lambda tmp: tmp / "missing.log", "no such file"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_cli_input_errors_exit_2(tmp_path, capsys, make_path, problem):
    path = make_path(tmp_path)
    assert main(["audit", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: {problem}" + (
        ", expected an audit log file" if problem == "is a directory" else ""
    )


def test_cli_bad_since_exits_2(capsys):
    assert main(["audit", "--since", "soon", str(PLAIN)]) == 2
    assert capsys.readouterr().err.startswith("error: --since:")
