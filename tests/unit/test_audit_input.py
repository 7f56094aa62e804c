"""`tracer audit` on bad input: wrongly typed events, files that are not audit logs, limits (its
memory: tests/perf/test_audit_memory.py)."""

from __future__ import annotations

import copy
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support.audit_events import denial
from support.paths import REPO
from tracer.errors import InputError
from tracer.kube import audit
from tracer.kube.audit.seen import SeenDigests

TRACER = [sys.executable, "-c", "import sys; from tracer.cli import main; sys.exit(main(sys.argv[1:]))"]
FIXTURE = REPO / "fixtures" / "audit" / "kube-apiserver-audit.log"
MiB = 1 << 20


def kubelet_get(n: int) -> dict:
    """An event without Pod Security content."""
    when = f"2024-06-01T11:{n // 60 % 60:02d}:{n % 60:02d}.000000Z"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"get-{n}",
        "stage": "ResponseComplete",
        "verb": "get",
        "user": {"username": "system:node:n1"},
        "objectRef": {"resource": "configmaps", "namespace": "team", "name": "c"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": when,
        "stageTimestamp": when,
    }


def write_lines(path: Path, lines: list[bytes | dict]) -> Path:
    path.write_bytes(b"".join((orjson.dumps(x) if isinstance(x, dict) else x) + b"\n" for x in lines))
    return path


# --- wrongly typed events ---------------------------------------------------------------

WRONG_TYPES = [
    ("user", "alice", "user is a string, expected an object"),
    ("annotations", ["pod-security.kubernetes.io/enforce-policy"], "annotations is an array, expected an object"),
    ("objectRef", 7, "objectRef is an integer, expected an object"),
    ("responseStatus.code", "403", "responseStatus.code is a string, expected a number"),
    ("responseStatus.message", {"text": "x"}, "responseStatus.message is an object, expected a string"),
    ("userAgent", True, "userAgent is a boolean, expected a string"),
]


def with_field(event: dict, path: str, value) -> dict:
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    target[last] = value
    return event


def test_wrongly_typed_events_are_reported_and_the_rest_is_analysed(tmp_path):
    lines = [denial(0)]
    for n, (path, value, _) in enumerate(WRONG_TYPES, start=1):
        lines += [with_field(denial(n), path, value), denial(100 + n)]
    log = write_lines(tmp_path / "typed.log", lines)
    report = audit.analyze([log]).to_dict()
    assert [(m["line"], m["problem"]) for m in report["malformed"]] == [
        (2 * n, f"bad audit Event: {problem}") for n, (_, _, problem) in enumerate(WRONG_TYPES, start=1)
    ]
    assert report["events_read"] == 1 + len(WRONG_TYPES)
    [finding] = report["findings"]
    assert (finding["workload"], finding["check"], finding["count"]) == ("web", "runAsNonRoot", 1 + len(WRONG_TYPES))


def test_wrongly_typed_events_on_the_command_line(tmp_path):
    log = write_lines(tmp_path / "typed.log", [with_field(denial(0), "user", "alice"), denial(1)])
    done = subprocess.run([*TRACER, "audit", str(log)], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"{log}:1: bad audit Event: user is a string, expected an object" in done.stdout
    assert "1 events read, 1 malformed; 1 findings" in done.stdout
    assert done.stderr == ""


JSON_VALUES = ["text", 403, 4.5, True, [1, "x"], {"k": "v"}]
FIELD_PATHS = [
    "auditID",
    "stage",
    "user",
    "user.username",
    "impersonatedUser",
    "userAgent",
    "objectRef",
    "objectRef.resource",
    "objectRef.namespace",
    "objectRef.name",
    "responseStatus",
    "responseStatus.code",
    "responseStatus.message",
    "responseStatus.details",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "annotations",
    "annotations.pod-security.kubernetes.io/enforce-policy",
    "requestObject",
    "responseObject",
]


def test_no_field_of_any_type_makes_the_analysis_fail(tmp_path):
    """Every field the analysis reads, set to every JSON type: each event is either analysed
    or listed as malformed, never a traceback."""
    base = denial(0) | {
        "impersonatedUser": {"username": "bob"},
        "requestObject": {
            "metadata": {
                "generateName": "web-",
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9f8c6b5", "controller": True}],
            }
        },
        "responseObject": {"metadata": {"name": "web-x"}},
    }
    events = []
    for path in FIELD_PATHS:
        for value in JSON_VALUES:
            if "." in path and path.startswith("annotations."):
                event = copy.deepcopy(base)
                event["annotations"][path.split(".", 1)[1]] = value
            else:
                event = with_field(base, path, value)
            events.append(event | {"auditID": event["auditID"] if path == "auditID" else f"id-{len(events)}"})
    for path in [
        "requestObject.metadata",
        "requestObject.metadata.ownerReferences",
        "requestObject.metadata.ownerReferences.0",
        "responseObject.metadata",
    ]:
        for value in JSON_VALUES:
            event = copy.deepcopy(base)
            *parents, last = path.split(".")
            target = event
            for key in parents:
                target = target[int(key)] if key.isdigit() else target[key]
            target[int(last) if last.isdigit() else last] = value
            events.append(event | {"auditID": f"id-{len(events)}"})
    log = write_lines(tmp_path / "fuzz.log", events)
    listed = write_lines(
        tmp_path / "list.json", [{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}]
    )
    for path in (log, listed):
        report = audit.analyze([path]).to_dict(suggest=True)
        assert report["events_read"] + len(report["malformed"]) == len(events)
        assert report["findings"]  # the well-typed variants were analysed
    done = subprocess.run([*TRACER, "audit", "--suggest", str(log)], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr


# --- not an audit log -------------------------------------------------------------------


def _gzip_cut_in_header(path: Path) -> None:
    path.write_bytes(gzip.compress(orjson.dumps(denial(0)) + b"\n")[:6])


NOT_AUDIT_LOGS = {
    "empty.log": (lambda p: p.write_bytes(b""), "empty file"),
    "blank.log": (lambda p: p.write_bytes(b"\n  \n\n"), "only blank lines"),
    "corrupt.log.gz": (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(7, 200))), "corrupt gzip stream"),
    "cut.log.gz": (_gzip_cut_in_header, "corrupt gzip stream"),
    "junk.bin": (lambda p: p.write_bytes(bytes((i * 37 + i // 7) % 256 for i in range(20000))), "binary data"),
    "notes.txt": (lambda p: p.write_text("kube audit notes\n" * 200), "no audit.k8s.io Event in the first 100"),
    "pods.json": (
        lambda p: write_lines(p, [{"kind": "Pod", "apiVersion": "v1"}] * 3),
        "no audit.k8s.io Event in its 3 non-empty line(s); line 1: not an audit Event: kind='Pod'",
    ),
    "policy.yaml.gz": (
        lambda p: p.write_bytes(gzip.compress(b"apiVersion: audit.k8s.io/v1\nkind: Policy\n")),
        "line 1: not JSON: 'apiVersion: audit.k8s.io/v1'",
    ),
}


@pytest.mark.parametrize("name", NOT_AUDIT_LOGS)
def test_not_an_audit_log_exits_2_with_one_line(tmp_path, name):
    make, reason = NOT_AUDIT_LOGS[name]
    path = tmp_path / name
    make(path)
    done = subprocess.run([*TRACER, "audit", str(path)], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: {path}: not a Kubernetes audit log (")
    assert reason in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_executable_is_not_an_audit_log(tmp_path):
    elf = Path(shutil.which("ls") or sys.executable).resolve()
    assert elf.read_bytes()[:4] == b"\x7fELF"
    done = subprocess.run([*TRACER, "audit", str(FIXTURE), str(elf)], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {elf}: not a Kubernetes audit log (binary data)\n"


def test_events_first_then_garbage_is_an_audit_log_with_malformed_lines(tmp_path):
    """Only the start of a file decides whether it is an audit log; later junk is malformed."""
    log = write_lines(tmp_path / "tail.log", [denial(0), b"\x00\x00 crash tail", b"plain text"])
    report = audit.analyze([log]).to_dict()
    assert report["events_read"] == 1
    assert [(m["line"], m["problem"][:8]) for m in report["malformed"]] == [(2, "not JSON"), (3, "not JSON")]


# --- limits -----------------------------------------------------------------------------


def test_total_decompressed_limit(tmp_path):
    log = write_lines(tmp_path / "big.log", [denial(n) for n in range(200)])
    with pytest.raises(InputError, match=r"more than 100 KiB of \(decompressed\) data, the limit for one audit log"):
        audit.analyze([log], limits=audit.Limits(total=100 * 1024))
    assert audit.analyze([log], limits=audit.Limits(total=10 * MiB)).events_read == 200


def test_document_limit(tmp_path):
    doc = tmp_path / "list.json"
    doc.write_text(
        json.dumps(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [denial(n) for n in range(50)]}, indent=2
        )
    )
    assert audit.analyze([doc]).events_read == 50
    with pytest.raises(
        InputError, match=r"not a Kubernetes audit log \(.*a JSON document over 16 KiB is not read whole"
    ):
        audit.analyze([doc], limits=audit.Limits(document=16 * 1024))


# --- reading runs of lines --------------------------------------------------------------


def test_line_numbers_across_many_blocks_and_both_reading_paths(tmp_path):
    """Small blocks (the block size follows the line limit) put thousands of block boundaries
    in one log; malformed candidate lines must still be reported at their exact line."""
    lines: list[bytes | dict] = []
    for n in range(6000):
        lines.append(denial(n, namespace=f"ns{n % 3}") if n % 7 == 0 else kubelet_get(n))
    lines[4321 - 1] = orjson.dumps(with_field(denial(4321), "objectRef", 5))
    lines[2500 - 1] = b"I0603 10:00:01.000123 1 trace.go:236] a klog line"  # a run read line by line
    lines[5000 - 1] = orjson.dumps(denial(5000))[:-40]  # cut mid-write, holds "PodSecurity"
    lines[5999 - 1] = json.dumps(kubelet_get(5999), indent=None, separators=(", ", ": ")).encode()
    log = write_lines(tmp_path / "many.log", lines)
    expected_events = 6000 - 3
    for limits in (audit.DEFAULT_LIMITS, audit.Limits(line=4096)):
        report = audit.analyze([log], limits=limits).to_dict()
        assert [(m["line"], m["problem"][:16]) for m in report["malformed"]] == [
            (2500, "not JSON: 'I0603"),
            (4321, "bad audit Event:"),
            (5000, "not JSON: '{\"kin"),
        ]
        assert report["events_read"] == expected_events
        denials = sum(1 for line in lines if isinstance(line, dict) and line["verb"] == "create")
        assert sum(f["count"] for f in report["findings"]) == denials


def test_crlf_lines_and_gzip_members_with_padding(tmp_path):
    first = gzip.compress(b"".join(orjson.dumps(denial(n)) + b"\r\n" for n in range(3)))
    second = gzip.compress(orjson.dumps(denial(3)) + b"\n")
    log = tmp_path / "members.log.gz"
    log.write_bytes(first + b"\0" * 512 + second)
    report = audit.analyze([log]).to_dict()
    assert (report["events_read"], report["malformed"]) == (4, [])
    assert report["findings"][0]["count"] == 4


def test_malformed_lines_past_the_listing_limit_are_counted(tmp_path):
    log = write_lines(tmp_path / "noisy.log", [denial(0)] + [b"klog line"] * 25)
    report = audit.analyze([log], limits=audit.Limits(listed_malformed=10))
    assert report.malformed_lines == 25
    assert len(report.malformed) == 11
    assert report.malformed[-1].problem.startswith("15 more malformed line(s) after this one not listed")


def test_seen_digests_survive_growth():
    seen = SeenDigests(capacity=8)
    keys = [(f"id-{n}", "ResponseComplete") for n in range(5000)]
    assert all(seen.add(key) for key in keys)
    assert not any(seen.add(key) for key in keys)
    assert len(seen) == 5000
