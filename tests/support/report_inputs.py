"""Inputs for `tracer report` that the offline report tests and the browser tests share."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import orjson

from support.paths import FIXTURES, REPO
from tracer.trace.format import load_trace, trace_to_document

MINI_NIM_TRACE = FIXTURES / "mini-nim.trace.json"
MINI_NIM_MANIFEST = REPO / "tracer/embedded/mininim/deployment.yaml"


class PageText(HTMLParser):
    """The text a reader sees, and every tag and attribute, of an HTML page."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)

    @property
    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


def page(html: str) -> PageText:
    parser = PageText()
    parser.feed(html)
    return parser


def write_profile(
    directory: Path, rules: list[dict], capabilities: dict | None = None, recording: dict | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    seccomp = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }
    (directory / "seccomp.json").write_text(json.dumps(seccomp))
    (directory / "capabilities.json").write_text(json.dumps(capabilities or {"add": [], "drop": ["ALL"]}))
    if recording is not None:
        (directory / "recording.json").write_text(json.dumps(recording))
    return directory


def trace_copy(tmp_path: Path, change) -> Path:
    """The mini-NIM fixture as a current-version trace (which may hold a network section), changed."""
    document = trace_to_document(load_trace(MINI_NIM_TRACE))
    change(document)
    path = tmp_path / "changed.trace.json"
    path.write_bytes(orjson.dumps(document))
    return path


MINI_NIM_NETWORK = {
    "listening": [
        {"protocol": "tcp", "family": "ipv4", "address": "0.0.0.0", "port": 8000, "interface": None},
        {"protocol": "tcp", "family": "ipv4", "address": "127.0.0.1", "port": 9000, "interface": None},
        {"protocol": "udp", "family": "ipv6", "address": "::", "port": 80, "interface": None},
    ],
    "interfaces": [
        {"name": "lo", "kind": None, "up": True, "loopback": True, "addresses": ["127.0.0.1/8", "::1/128"]},
        {"name": "eth0", "kind": "veth", "up": True, "loopback": False, "addresses": ["10.213.7.2/30"]},
    ],
    "destinations": [{"protocol": "udp", "family": "ipv4", "address": "10.96.0.10", "port": 53, "count": 4}],
    "unprivileged_port_start": 1024,
}


HOSTILE = "<script>alert(1)</script>"


def hostile_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    def poison(doc):
        doc["metadata"]["hostname"] = HOSTILE
        doc["metadata"]["target"]["name"] = HOSTILE
        doc["network"] = {
            **MINI_NIM_NETWORK,
            "interfaces": [{"name": HOSTILE, "kind": HOSTILE, "up": True, "loopback": False, "addresses": []}],
        }

    trace = trace_copy(tmp_path, poison)
    profile = write_profile(
        tmp_path / "profile",
        [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "comment": HOSTILE,
                "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1}],
            },
        ],
        capabilities={
            "add": ["CAP_CHOWN"],
            "drop": ["ALL"],
            "evidence": {
                "CAP_CHOWN": [
                    {"syscall": HOSTILE, "phase": "startup", "outcome": "granted", "count": 1, "verdict": "used"}
                ]
            },
        },
    )
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        MINI_NIM_MANIFEST.read_text()
        .replace("name: mini-nim\n  namespace", f"name: '{HOSTILE}'\n  namespace")
        .replace("- name: mini-nim", f"- name: '{HOSTILE}'")
    )
    return profile, trace, manifest
