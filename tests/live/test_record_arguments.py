"""The recorder records the arguments that decide danger, aggregated in the kernel, for real."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from support.cli import tracer_cli
from tracer.trace.format import load_trace

pytestmark = pytest.mark.usefixtures("live")

# Each call once or a known number of times, with values a profile would condition on.
WORKLOAD = r"""
import ctypes, fcntl, os, socket, termios, threading
libc = ctypes.CDLL(None, use_errno=True)
socket.socket(socket.AF_INET6, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK).close()
socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12).close()   # NETLINK_NETFILTER
socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
null = os.open("/dev/null", os.O_RDONLY)
for _ in range(7):
    fcntl.ioctl(null, termios.FIOCLEX)
c = socket.socket()
try:
    c.connect(("127.0.0.1", 9))
except OSError:
    pass
libc.syscall(135, ctypes.c_ulong(0xffffffffffffffff))   # personality, query, sign-extended
libc.prctl(15, b"probe-name")                           # PR_SET_NAME
t = threading.Thread(target=lambda: None); t.start(); t.join()
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    trace_path = tmp_path_factory.mktemp("args") / "t.json"
    done = tracer_cli("record", "--out", str(trace_path), "--", sys.executable, "-c", WORKLOAD)
    assert done.returncode == 0, done.stderr
    return load_trace(trace_path)


def rows(trace, syscall, **values):
    return [r for r in trace.arguments.rows if r.syscall == syscall and all(r[k] == v for k, v in values.items())]


def test_trace_is_version_2_with_every_argument_syscall_recorded(recorded):
    assert recorded.arguments is not None
    assert set(recorded.arguments.recorded) == {
        "clone",
        "clone3",
        "unshare",
        "setns",
        "socket",
        "socketpair",
        "personality",
        "prctl",
        "ioctl",
        "connect",
    }
    assert recorded.lost_total() == 0


def test_socket_family_type_without_flags_and_protocol(recorded):
    (inet6,) = rows(recorded, "socket", family=socket_family("AF_INET6"))
    assert inet6["type"] == 2 and inet6.errno == 0 and inet6.count == 1  # SOCK_DGRAM, SOCK_NONBLOCK masked
    (netfilter,) = rows(recorded, "socket", family=16)
    assert netfilter["protocol"] == 12 and netfilter.phase == "startup"
    assert rows(recorded, "socketpair", family=1, type=1)


def test_ioctl_request_counted_with_the_device_it_went_to(recorded):
    (fioclex,) = rows(recorded, "ioctl", request=0x5451)
    assert fioclex["device"] == "/dev/null" and fioclex.count == 7 and fioclex.errno == 0


def test_connect_destination_and_result(recorded):
    (refused,) = rows(recorded, "connect", address="127.0.0.1", port=9)
    assert refused["family"] == 2 and refused.errno == 111  # ECONNREFUSED


def test_registers_kept_whole_as_seccomp_sees_them(recorded):
    assert rows(recorded, "personality", persona=0xFFFFFFFFFFFFFFFF)
    assert rows(recorded, "prctl", option=15)


def test_thread_creation_flags_without_namespaces(recorded):
    created = rows(recorded, "clone3") + rows(recorded, "clone")
    assert created and all(r["flags"] & 0x7E020000 == 0 for r in created)
    assert all(r["flags"] & 0x10000 for r in rows(recorded, "clone3"))  # CLONE_THREAD


def test_a_full_argument_map_is_counted_never_silent(tmp_path):
    trace_path = tmp_path / "full.json"
    env = {**os.environ, "TRACER_ARG_MAP_ENTRIES": "2"}
    done = tracer_cli("record", "--out", str(trace_path), "--", sys.executable, "-c", WORKLOAD, env=env)
    trace = load_trace(trace_path)  # (a command's own exit status passes through)
    assert trace.lost["arg_map_full"] > 0 and f"arg_map_full {trace.lost['arg_map_full']}" in done.stderr
    assert len([r for r in trace.arguments.rows if r.syscall != "connect"]) <= 2


def socket_family(name: str) -> int:
    return int(getattr(socket, name))
