"""Observing a real network namespace: a pod-like namespace joined by a veth pair to a second
namespace of its own (10.213.7.0/30 and fd74:7263::/126, nothing else routes there), with
listeners started inside, observed through sock_diag and rtnetlink.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes_validate
import orjson
import pytest
from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from support.cli import tracer_cli
from support.listeners import tcp, udp
from tracer.errors import InputError
from tracer.kube.networkpolicy import network_policy
from tracer.network import netns
from tracer.network.netns import call_in, network_namespace, pid_namespace_path, unique_name
from tracer.network.observe import observe
from tracer.network.surface import Destination, Interface, NetworkSurface

POD_V4, PEER_V4 = "10.213.7.1", "10.213.7.2"
POD_V6, PEER_V6 = "fd74:7263::1", "fd74:7263::2"
K8S_VERSION = kubernetes_validate.latest_version()


@dataclass
class PodNetwork:
    pod: Path  # the observed namespace
    peer: Path  # the other end of the veth pair
    pod_link: str
    peer_link: str
    sockets: list[socket.socket] = field(default_factory=list)

    def open_in_pod(
        self, family: int, kind: int, address: tuple, listen: bool = True, v6only: bool = False
    ) -> socket.socket:
        return self._open(self.pod, family, kind, address, listen, v6only)

    def open_in_peer(self, family: int, kind: int) -> socket.socket:
        return self._open(self.peer, family, kind, None, False, False)

    def _open(self, namespace: Path, family, kind, address, listen, v6only) -> socket.socket:
        def create() -> socket.socket:  # a socket belongs to the namespace it is created in
            sock = socket.socket(family, kind)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
                if address is not None:
                    sock.bind(address)
                if listen:
                    sock.listen()
            except BaseException:
                sock.close()
                raise
            return sock

        sock = call_in(namespace, create)
        self.sockets.append(sock)
        return sock


def unique_link(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"  # within IFNAMSIZ (15)


def configure_link(name: str, addresses: list[tuple[str, int]]) -> None:
    """In the calling thread's namespace: no automatic IPv6 address, the given ones, up."""
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=name)
        Path(f"/proc/sys/net/ipv6/conf/{name}/addr_gen_mode").write_text("1")  # no link-local address
        for address, prefix in addresses:
            ipr.addr("add", index=index, address=address, prefixlen=prefix, flags=IFA_F_NODAD)
        ipr.link("set", index=index, state="up")


def add_veth(pod_link: str, peer_link: str, peer: Path) -> None:
    with IPRoute() as ipr:
        ipr.link("add", ifname=pod_link, kind="veth", peer={"ifname": peer_link, "net_ns_fd": str(peer)})


@contextmanager
def pod_network() -> Iterator[PodNetwork]:
    """Two new namespaces joined by a veth pair; everything closed and removed on every path."""
    with ExitStack() as stack:
        pod = stack.enter_context(netns.network_namespace(netns.unique_name("tracer-net")))
        peer = stack.enter_context(netns.network_namespace(netns.unique_name("tracer-peer")))
        network = PodNetwork(pod, peer, unique_link("nvp"), unique_link("nvq"))
        stack.callback(lambda: [s.close() for s in network.sockets])  # an open socket keeps its namespace alive
        call_in(pod, lambda: add_veth(network.pod_link, network.peer_link, peer))
        call_in(pod, lambda: configure_link(network.pod_link, [(POD_V4, 30), (POD_V6, 126)]))
        call_in(peer, lambda: configure_link(network.peer_link, [(PEER_V4, 30), (PEER_V6, 126)]))
        yield network


def set_unprivileged_port_start(namespace: Path, value: int) -> None:
    call_in(namespace, lambda: Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").write_text(str(value)))


EXPECTED_LISTENERS = {
    tcp("0.0.0.0", 8000),
    tcp("127.0.0.1", 9000),
    tcp("0.0.0.0", 80),
    tcp("::", 8443),
    tcp("::1", 9001),
    udp("0.0.0.0", 8125),
}


@pytest.fixture(scope="module")
def serving(live) -> Iterator[PodNetwork]:
    """The pod namespace with its listeners, an accepted connection and a connected UDP socket."""
    with pod_network() as network:
        server = network.open_in_pod(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 8000))
        network.open_in_pod(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 9000))
        network.open_in_pod(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 80))
        network.open_in_pod(socket.AF_INET6, socket.SOCK_STREAM, ("::", 8443), v6only=True)
        network.open_in_pod(socket.AF_INET6, socket.SOCK_STREAM, ("::1", 9001), v6only=True)
        network.open_in_pod(socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 8125), listen=False)
        # Not listeners: a resolver-style connected UDP socket and both ends of a TCP connection.
        network.open_in_pod(socket.AF_INET, socket.SOCK_DGRAM, None, listen=False).connect((PEER_V4, 53))
        client = network.open_in_peer(socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(5)
        client.connect((POD_V4, 8000))
        accepted, _ = server.accept()
        network.sockets.append(accepted)
        yield network


def test_observes_exactly_the_listening_sockets(serving):
    surface = observe(serving.pod)
    assert set(surface.listening) == EXPECTED_LISTENERS
    assert len(surface.listening) == len(EXPECTED_LISTENERS)
    assert surface.destinations is None  # the recorder supplies them


def test_observes_the_interfaces_and_their_addresses(serving):
    surface = observe(serving.pod)
    assert surface.interfaces == (
        Interface("lo", None, True, True, ("127.0.0.1/8", "::1/128")),
        Interface(serving.pod_link, "veth", True, False, (f"{POD_V4}/30", f"{POD_V6}/126")),
    )
    (veth,) = [i for i in surface.interfaces if i.veth]
    assert veth.name == serving.pod_link


def test_the_peer_namespace_is_seen_apart(serving):
    surface = observe(serving.peer)
    assert surface.listening == ()
    assert [(i.name, i.addresses) for i in surface.interfaces] == [
        ("lo", ("127.0.0.1/8", "::1/128")),
        (serving.peer_link, (f"{PEER_V4}/30", f"{PEER_V6}/126")),
    ]


def test_observing_by_pid_reads_the_same_namespace(serving):
    # setns before exec: Popen returns once the child runs `sleep` inside the namespace.
    child = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: pyroute2_netns.setns(str(serving.pod), flags=0))
    try:
        assert set(observe(pid_namespace_path(child.pid)).listening) == EXPECTED_LISTENERS
    finally:
        child.kill()
        child.wait()


def test_loopback_listeners_are_unreachable_from_the_peer(serving):
    """What the policy relies on: 9000 on 127.0.0.1 cannot be reached through the veth, 8000 can."""
    probe = serving.open_in_peer(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(5)
    with pytest.raises(ConnectionRefusedError):
        probe.connect((POD_V4, 9000))
    reachable = serving.open_in_peer(socket.AF_INET6, socket.SOCK_STREAM)
    reachable.settimeout(5)
    reachable.connect((POD_V6, 8443))
    surface = observe(serving.pod)
    assert {(s.protocol, s.port) for s in surface.reachable_listeners()} == {
        ("tcp", 80),
        ("tcp", 8000),
        ("tcp", 8443),
        ("udp", 8125),
    }


def test_privileged_ports_follow_the_sysctl_inside_the_namespace(serving):
    host_value = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()
    assert observe(serving.pod).privileged_ports() == [80]
    try:
        set_unprivileged_port_start(serving.pod, 8001)
        surface = observe(serving.pod)
        assert surface.unprivileged_port_start == 8001
        assert surface.privileged_ports() == [80, 8000]
        set_unprivileged_port_start(serving.pod, 80)
        assert observe(serving.pod).privileged_ports() == []
        assert Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text() == host_value
    finally:
        set_unprivileged_port_start(serving.pod, 1024)
    assert observe(serving.pod).privileged_ports() == [80]


def test_policy_from_the_observed_namespace(serving):
    surface = observe(serving.pod)
    cases = {
        "none-recorded": surface.with_destinations([]),
        "unrecorded": surface,
        "dns": surface.with_destinations([Destination("udp", "ipv4", PEER_V4, 53, 3)]),
    }
    policies = {case: network_policy(s, "mini-nim", {"app": "mini-nim"}, "nim").manifest for case, s in cases.items()}
    for manifest in policies.values():
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        assert manifest["spec"]["ingress"] == [
            {
                "ports": [
                    {"protocol": "TCP", "port": 80},
                    {"protocol": "TCP", "port": 8000},
                    {"protocol": "TCP", "port": 8443},
                    {"protocol": "UDP", "port": 8125},
                ]
            }
        ]

    assert policies["none-recorded"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in policies["none-recorded"]["spec"]
    assert policies["unrecorded"]["spec"]["policyTypes"] == ["Ingress"]
    dns_rule, address_rule = policies["dns"]["spec"]["egress"]
    assert dns_rule["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert address_rule == {"to": [{"ipBlock": {"cidr": f"{PEER_V4}/32"}}], "ports": [{"protocol": "UDP", "port": 53}]}


def test_clean_up_leaves_no_namespace_and_no_link(live):
    def leftovers(network: PodNetwork) -> list[str]:
        names = set(netns.NETNS_DIR.iterdir()) if netns.NETNS_DIR.exists() else set()
        with IPRoute() as ipr:
            links = ipr.link_lookup(ifname=network.pod_link) + ipr.link_lookup(ifname=network.peer_link)
        return [str(p) for p in (network.pod, network.peer) if p in names] + [f"link {n}" for n in links]

    with pod_network() as network:
        network.open_in_pod(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 8000))
        assert len(leftovers(network)) == 2  # both namespaces exist while in use
    assert leftovers(network) == []
    assert all(s.fileno() == -1 for s in network.sockets)

    with pytest.raises(RuntimeError, match="fails half-way"), pod_network() as failing:
        failing.open_in_pod(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 8000))
        raise RuntimeError("the test fails half-way")
    assert leftovers(failing) == []
    assert all(s.fileno() == -1 for s in failing.sockets)


def thread_namespace() -> tuple[int, int]:
    here = os.stat("/proc/thread-self/ns/net")
    return here.st_dev, here.st_ino


def namespace_of_a_thread_started_here() -> tuple[int, int]:
    seen = []
    worker = threading.Thread(target=lambda: seen.append(thread_namespace()))
    worker.start()
    worker.join()
    return seen[0]


def test_call_in_runs_inside_and_the_caller_never_moves(live):
    """What the load tester and the readiness probe rely on: the function and the threads it
    starts run inside; the calling thread stays where it was, also when the function fails."""
    ours = thread_namespace()
    with netns.network_namespace(netns.unique_name("tracer-call")) as path:
        theirs = (path.stat().st_dev, path.stat().st_ino)
        assert call_in(path, thread_namespace) == theirs
        assert call_in(path.name, namespace_of_a_thread_started_here) == theirs
        with pytest.raises(ZeroDivisionError):
            call_in(path, lambda: 1 / 0)
        assert thread_namespace() == ours


def test_observing_a_missing_or_wrong_namespace_is_an_input_error(live, tmp_path):
    with pytest.raises(InputError, match="no such network namespace"):
        observe(f"tracer-missing-{uuid.uuid4().hex[:8]}")
    not_a_namespace = tmp_path / "plain-file"
    not_a_namespace.write_text("")
    with pytest.raises(InputError, match="not a network namespace"):
        observe(not_a_namespace)


def test_cli_observe_then_policy_on_a_real_namespace(live, tmp_path):
    with network_namespace(unique_name("tracer-cli")) as path:
        surface_file = tmp_path / "surface.json"
        done = tracer_cli("network", "observe", path.name, "--out", str(surface_file), "--format", "json")
        assert done.returncode == 0, done.stderr
        observed = NetworkSurface.from_json(orjson.loads(done.stdout))
        assert observed == NetworkSurface.from_json(orjson.loads(surface_file.read_bytes()))
        assert [i.name for i in observed.interfaces] == ["lo"] and observed.listening == ()
        text = tracer_cli("network", "observe", str(path))
        assert "privileged ports (below 1024, need CAP_NET_BIND_SERVICE): none" in text.stdout
        done = tracer_cli("network", "policy", str(surface_file), "--name", "x", "--selector", "app=x")
        assert done.returncode == 0, done.stderr
        assert "nothing listens outside loopback: all ingress is denied" in done.stderr
