"""tracer/network/surface.py, the network surface model, and tracer/network/observe.py, observing a
real network namespace (entered through tracer/network/netns.py).

The live tests build a pod-like namespace joined by a veth pair to a second namespace of their
own (10.213.7.0/30 and fd74:7263::/126, nothing else routes there), start listeners inside and
observe them through sock_diag and rtnetlink.
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
import pytest
from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.diag import SS_LISTEN
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from tracer.network import netns
from tracer.errors import InputError
from tracer.kube.networkpolicy import network_policy
from tracer.network.netns import ObservationError, call_in, pid_namespace_path
from tracer.network.observe import dump_sockets, observe, open_diag_socket
from tracer.network.surface import Destination, Interface, ListeningSocket, NetworkSurface, merge_surfaces

POD_V4, PEER_V4 = "10.213.7.1", "10.213.7.2"
POD_V6, PEER_V6 = "fd74:7263::1", "fd74:7263::2"
K8S_VERSION = kubernetes_validate.latest_version()


def tcp(address: str, port: int, interface: str | None = None) -> ListeningSocket:
    return ListeningSocket("tcp", "ipv6" if ":" in address else "ipv4", address, port, interface)


def udp(address: str, port: int) -> ListeningSocket:
    return ListeningSocket("udp", "ipv6" if ":" in address else "ipv4", address, port)


LOOPBACK = Interface("lo", None, True, True, ("::1/128", "127.0.0.1/8"))


# ---------------------------------------------------------------- the model


def sample_surface() -> NetworkSurface:
    return NetworkSurface(
        listening=(tcp("0.0.0.0", 8000), tcp("127.0.0.1", 9000), udp("::", 5353), tcp("0.0.0.0", 80)),
        interfaces=(Interface("eth0", "veth", True, False, ("10.0.0.2/24",)), LOOPBACK),
        destinations=(Destination("udp", "ipv4", "10.96.0.10", 53, 4),),
        unprivileged_port_start=1024,
    )


def test_json_round_trip_keeps_everything():
    surface = sample_surface()
    data = surface.to_json()
    assert NetworkSurface.from_json(data) == surface
    assert data["listening"][0] == {"protocol": "tcp", "family": "ipv4", "address": "0.0.0.0",
                                    "port": 80, "interface": None}
    assert [i["name"] for i in data["interfaces"]] == ["eth0", "lo"]
    assert data["interfaces"][1]["addresses"] == ["127.0.0.1/8", "::1/128"]
    assert data["destinations"] == [{"protocol": "udp", "family": "ipv4", "address": "10.96.0.10",
                                     "port": 53, "count": 4}]


def test_unrecorded_destinations_stay_distinct_from_none_recorded():
    unrecorded = sample_surface().with_destinations(None)
    nothing = sample_surface().with_destinations([])
    assert unrecorded.to_json()["destinations"] is None
    assert nothing.to_json()["destinations"] == []
    assert NetworkSurface.from_json(unrecorded.to_json()).destinations is None
    assert NetworkSurface.from_json(nothing.to_json()).destinations == ()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("listening"), "network.listening: missing (required)"),
    (lambda d: d["listening"][0].update(port=0), "network.listening[0].port: 0 is below the minimum 1"),
    (lambda d: d["listening"][2].update(family="ipv6"), "network.listening[2]: 127.0.0.1 is not an ipv6 address"),
    (lambda d: d["listening"][3].update(protocol="sctp"),
     'network.listening[3].protocol: expected one of "tcp", "udp", got the string "sctp"'),
    (lambda d: d["interfaces"][0].update(up="yes"), 'network.interfaces[0].up: expected true or false, got the string "yes"'),
    (lambda d: d["interfaces"][0].update(addresses=["10.0.0.300/24"]),
     "network.interfaces[0]: '10.0.0.300/24' is not an address/prefix"),
    (lambda d: d["destinations"][0].update(count=-1), "network.destinations[0].count: -1 is below the minimum 0"),
    (lambda d: d.update(destinations={}), "network.destinations: expected a list or null, got an object"),
    (lambda d: d.update(extra=1), "network.extra: unknown field (expected one of listening, interfaces,"),
    (lambda d: d.update(unprivileged_port_start="1024"),
     'network.unprivileged_port_start: expected an integer, got the string "1024"'),
])
def test_bad_json_names_the_file_and_the_field(mutate, message):
    data = sample_surface().to_json()
    mutate(data)
    with pytest.raises(InputError) as error:
        NetworkSurface.from_json(data, source="trace.json")
    assert error.value.source == "trace.json"
    assert message in error.value.problem


def test_privileged_ports_follow_the_namespace_limit():
    surface = sample_surface()
    assert surface.privileged_ports() == [80]
    assert NetworkSurface(surface.listening, (), None, 81).privileged_ports() == [80]
    assert NetworkSurface(surface.listening, (), None, 80).privileged_ports() == []
    assert NetworkSurface(surface.listening, (), None, 8001).privileged_ports() == [80, 5353, 8000]


def test_loopback_only_means_a_loopback_address_or_device():
    listeners = (tcp("127.0.0.1", 1), tcp("127.3.2.1", 2), tcp("::1", 3), tcp("::ffff:127.0.0.1", 4),
                 tcp("0.0.0.0", 5, interface="lo"), tcp("0.0.0.0", 6), tcp("::", 7), tcp("10.0.0.2", 8),
                 tcp("0.0.0.0", 9, interface="eth0"))
    surface = NetworkSurface(listeners, (LOOPBACK, Interface("eth0", "veth", True, False, ())))
    assert sorted(s.port for s in surface.reachable_listeners()) == [6, 7, 8, 9]


def test_merge_is_the_union():
    first = NetworkSurface((tcp("0.0.0.0", 8000),), (Interface("eth0", "veth", False, False, ("10.0.0.2/24",)),),
                           (Destination("tcp", "ipv4", "10.0.0.9", 443, 2),), 1024)
    second = NetworkSurface((tcp("0.0.0.0", 8000), udp("0.0.0.0", 8125)),
                            (Interface("eth0", "veth", True, False, ("fd00::2/64",)), LOOPBACK),
                            (Destination("tcp", "ipv4", "10.0.0.9", 443, 3), Destination("udp", "ipv4", "10.96.0.10", 53, 1)),
                            80)
    merged = first.merge(second)
    assert merged.listening == (tcp("0.0.0.0", 8000), udp("0.0.0.0", 8125))
    assert merged.interfaces == (Interface("eth0", "veth", True, False, ("10.0.0.2/24", "fd00::2/64")), LOOPBACK)
    assert merged.destinations == (Destination("tcp", "ipv4", "10.0.0.9", 443, 5),
                                   Destination("udp", "ipv4", "10.96.0.10", 53, 1))
    assert merged.unprivileged_port_start == 1024  # the stricter namespace decides
    assert merge_surfaces([first, second, first]).destinations[0].count == 7


def test_merge_with_an_unrecorded_side_leaves_destinations_unknown():
    recorded = sample_surface()
    assert recorded.merge(recorded.with_destinations(None)).destinations is None
    assert recorded.with_destinations(None).merge(recorded).destinations is None


def test_addresses_are_canonical_so_equal_sockets_merge():
    assert tcp("0:0::0", 80) == tcp("::", 80)
    surface = NetworkSurface((tcp("::", 80), tcp("0::0", 80)), ())
    assert len(surface.listening) == 1


def test_a_protocol_sock_diag_cannot_list_is_an_error_not_an_empty_list():
    """The kernel ends such a dump with NLMSG_DONE carrying -ENOENT; pyroute2 alone drops it."""
    with open_diag_socket() as diag:
        with pytest.raises(ObservationError, match="IP protocol 250.*No such file or directory"):
            dump_sockets(diag, socket.AF_INET, 250, 1 << SS_LISTEN)
        assert isinstance(dump_sockets(diag, socket.AF_INET, socket.IPPROTO_TCP, 1 << SS_LISTEN), tuple)  # still usable


# ---------------------------------------------------------------- a real namespace


@dataclass
class PodNetwork:
    pod: Path                  # the observed namespace
    peer: Path                 # the other end of the veth pair
    pod_link: str
    peer_link: str
    sockets: list[socket.socket] = field(default_factory=list)

    def open_in_pod(self, family: int, kind: int, address: tuple, listen: bool = True,
                    v6only: bool = False) -> socket.socket:
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
    tcp("0.0.0.0", 8000), tcp("127.0.0.1", 9000), tcp("0.0.0.0", 80), tcp("::", 8443), tcp("::1", 9001),
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
        ("lo", ("127.0.0.1/8", "::1/128")), (serving.peer_link, (f"{PEER_V4}/30", f"{PEER_V6}/126"))]


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
        ("tcp", 80), ("tcp", 8000), ("tcp", 8443), ("udp", 8125)}


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
        assert manifest["spec"]["ingress"] == [{"ports": [
            {"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 8443},
            {"protocol": "UDP", "port": 8125}]}]

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
