"""tracer/network/surface.py, the network surface model (observing a real network namespace,
tracer/network/observe.py: tests/live/test_network_namespace.py)."""

from __future__ import annotations

import socket

import pytest
from pyroute2.netlink.diag import SS_LISTEN

from support.listeners import tcp, udp
from tracer.errors import InputError
from tracer.network.netns import ObservationError
from tracer.network.observe import dump_sockets, open_diag_socket
from tracer.network.surface import Destination, Interface, NetworkSurface, merge_surfaces

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
    assert data["listening"][0] == {
        "protocol": "tcp",
        "family": "ipv4",
        "address": "0.0.0.0",
        "port": 80,
        "interface": None,
    }
    assert [i["name"] for i in data["interfaces"]] == ["eth0", "lo"]
    assert data["interfaces"][1]["addresses"] == ["127.0.0.1/8", "::1/128"]
    assert data["destinations"] == [
        {"protocol": "udp", "family": "ipv4", "address": "10.96.0.10", "port": 53, "count": 4}
    ]


def test_unrecorded_destinations_stay_distinct_from_none_recorded():
    unrecorded = sample_surface().with_destinations(None)
    nothing = sample_surface().with_destinations([])
    assert unrecorded.to_json()["destinations"] is None
    assert nothing.to_json()["destinations"] == []
    assert NetworkSurface.from_json(unrecorded.to_json()).destinations is None
    assert NetworkSurface.from_json(nothing.to_json()).destinations == ()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("listening"), "network.listening: missing (required)"),
        (lambda d: d["listening"][0].update(port=0), "network.listening[0].port: 0 is below the minimum 1"),
        (lambda d: d["listening"][2].update(family="ipv6"), "network.listening[2]: 127.0.0.1 is not an ipv6 address"),
        (
            lambda d: d["listening"][3].update(protocol="sctp"),
            'network.listening[3].protocol: expected one of "tcp", "udp", got the string "sctp"',
        ),
        (
            lambda d: d["interfaces"][0].update(up="yes"),
            'network.interfaces[0].up: expected true or false, got the string "yes"',
        ),
        (
            lambda d: d["interfaces"][0].update(addresses=["10.0.0.300/24"]),
            "network.interfaces[0]: '10.0.0.300/24' is not an address/prefix",
        ),
        (lambda d: d["destinations"][0].update(count=-1), "network.destinations[0].count: -1 is below the minimum 0"),
        (lambda d: d.update(destinations={}), "network.destinations: expected a list or null, got an object"),
        (lambda d: d.update(extra=1), "network.extra: unknown field (expected one of listening, interfaces,"),
        (
            lambda d: d.update(unprivileged_port_start="1024"),
            'network.unprivileged_port_start: expected an integer, got the string "1024"',
        ),
    ],
)
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
    listeners = (
        tcp("127.0.0.1", 1),
        tcp("127.3.2.1", 2),
        tcp("::1", 3),
        tcp("::ffff:127.0.0.1", 4),
        tcp("0.0.0.0", 5, interface="lo"),
        tcp("0.0.0.0", 6),
        tcp("::", 7),
        tcp("10.0.0.2", 8),
        tcp("0.0.0.0", 9, interface="eth0"),
    )
    surface = NetworkSurface(listeners, (LOOPBACK, Interface("eth0", "veth", True, False, ())))
    assert sorted(s.port for s in surface.reachable_listeners()) == [6, 7, 8, 9]


def test_merge_is_the_union():
    first = NetworkSurface(
        (tcp("0.0.0.0", 8000),),
        (Interface("eth0", "veth", False, False, ("10.0.0.2/24",)),),
        (Destination("tcp", "ipv4", "10.0.0.9", 443, 2),),
        1024,
    )
    second = NetworkSurface(
        (tcp("0.0.0.0", 8000), udp("0.0.0.0", 8125)),
        (Interface("eth0", "veth", True, False, ("fd00::2/64",)), LOOPBACK),
        (Destination("tcp", "ipv4", "10.0.0.9", 443, 3), Destination("udp", "ipv4", "10.96.0.10", 53, 1)),
        80,
    )
    merged = first.merge(second)
    assert merged.listening == (tcp("0.0.0.0", 8000), udp("0.0.0.0", 8125))
    assert merged.interfaces == (Interface("eth0", "veth", True, False, ("10.0.0.2/24", "fd00::2/64")), LOOPBACK)
    assert merged.destinations == (
        Destination("tcp", "ipv4", "10.0.0.9", 443, 5),
        Destination("udp", "ipv4", "10.96.0.10", 53, 1),
    )
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
