"""The recorder observes the workload's network namespace (at readiness and before it stops) and
keeps the surface in the trace, which `tracer network policy` and `tracer report` read."""

from __future__ import annotations

import orjson
import pytest

from support.cli import tracer_cli
from tracer.network.netns import network_namespace
from tracer.network.observe import free_port
from tracer.trace.format import load_trace

pytestmark = pytest.mark.usefixtures("live")


def test_a_recorded_server_in_its_own_namespace_has_its_listener_in_the_trace(tmp_path):
    port = free_port()
    out = tmp_path / "server.trace.json"
    with network_namespace() as netns:
        done = tracer_cli(
            "record",
            "--quiet",
            "--duration",
            "3",
            "--out",
            str(out),
            "--",
            "ip",
            "netns",
            "exec",
            netns.name,
            "python3",
            "-m",
            "http.server",
            str(port),
        )
    assert done.returncode == 0, done.stderr
    network = load_trace(out).network
    assert network is not None and network["destinations"] is None  # not recorded: never guessed
    assert {(s["protocol"], s["address"], s["port"]) for s in network["listening"]} >= {("tcp", "0.0.0.0", port)}
    assert [i["name"] for i in network["interfaces"]] == ["lo"]
    policy = tracer_cli("network", "policy", str(out), "--name", "server", "--selector", "app=server")
    assert policy.returncode == 0 and f"port: {port}" in policy.stdout
    assert "- Ingress" in policy.stdout and "- Egress" not in policy.stdout  # egress left open, with a note


def test_a_workload_sharing_the_hosts_namespace_gets_no_network_section(tmp_path):
    out = tmp_path / "host.trace.json"
    assert tracer_cli("record", "--quiet", "--duration", "1", "--out", str(out), "--", "sleep", "5").returncode == 0
    assert load_trace(out).network is None  # the host's sockets are not the workload's
    assert "network" not in orjson.loads(out.read_bytes())
