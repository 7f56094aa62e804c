"""The network surface of a container: what listens in its network namespace, its interfaces,
and where it connects to. `NetworkSurface` is the data model, with its JSON form (the trace's
optional `network` section and a `tracer network observe --out` file, both `#/$defs/network`
in docs/trace.schema.json) and the union of observations (`merge`).

tracer.network.observe reads a surface from a namespace; the recorder supplies the
destinations (`with_destinations`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from tracer.errors import InputError
from tracer.schema import SchemaViolation
from tracer.trace.format import trace_schema

DEFAULT_UNPRIVILEGED_PORT_START = 1024  # kernels before 4.11 have no sysctl: the fixed limit
SCHEMA_POINTER = "#/$defs/network"

T = TypeVar("T")


@dataclass(frozen=True)
class ListeningSocket:
    """A socket that accepts traffic: TCP in LISTEN, or UDP bound to a port and not connected."""

    protocol: str  # "tcp" | "udp"
    family: str  # "ipv4" | "ipv6"
    address: str  # bound address; 0.0.0.0 or :: for every address
    port: int
    interface: str | None = None  # SO_BINDTODEVICE, if the socket is bound to one device

    def __post_init__(self):
        object.__setattr__(self, "address", canonical_address(self.family, self.address))

    @property
    def loopback_address(self) -> bool:
        return is_loopback(self.address)

    def sort_key(self) -> tuple:
        return (self.protocol, self.family, self.port, ipaddress.ip_address(self.address), self.interface or "")

    def describe(self) -> str:
        host = f"[{self.address}]" if self.family == "ipv6" else self.address
        device = f" (device {self.interface})" if self.interface else ""
        return f"{self.protocol} {host}:{self.port}{device}"

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol,
            "family": self.family,
            "address": self.address,
            "port": self.port,
            "interface": self.interface,
        }


@dataclass(frozen=True)
class Interface:
    name: str
    kind: str | None  # rtnetlink link kind: "veth", "bridge", ...; None for lo and physical devices
    up: bool  # administratively up (IFF_UP)
    loopback: bool  # IFF_LOOPBACK
    addresses: tuple[str, ...]  # "address/prefix", IPv4 then IPv6

    def __post_init__(self):
        object.__setattr__(self, "addresses", sorted_interface_addresses(self.addresses))

    @property
    def veth(self) -> bool:
        return self.kind == "veth"

    def merge(self, other: Interface) -> Interface:
        return Interface(
            self.name,
            self.kind or other.kind,
            self.up or other.up,
            self.loopback or other.loopback,
            self.addresses + other.addresses,
        )

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "up": self.up,
            "loopback": self.loopback,
            "addresses": list(self.addresses),
        }


@dataclass(frozen=True)
class Destination:
    """Where the workload sent traffic, as the recorder saw it, and how many times."""

    protocol: str
    family: str
    address: str
    port: int
    count: int

    def __post_init__(self):
        object.__setattr__(self, "address", canonical_address(self.family, self.address))

    def key(self) -> tuple:
        return (self.protocol, self.family, ipaddress.ip_address(self.address), self.port)

    def describe(self) -> str:
        host = f"[{self.address}]" if self.family == "ipv6" else self.address
        return f"{self.protocol} {host}:{self.port}"

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol,
            "family": self.family,
            "address": self.address,
            "port": self.port,
            "count": self.count,
        }


@dataclass(frozen=True)
class NetworkSurface:
    """One network namespace as observed: listeners, interfaces, and (from the recorder) destinations.

    `destinations` is None where they were not recorded, which is not the same as an empty
    list (recorded: none).
    """

    listening: tuple[ListeningSocket, ...]
    interfaces: tuple[Interface, ...]
    destinations: tuple[Destination, ...] | None = None
    unprivileged_port_start: int = DEFAULT_UNPRIVILEGED_PORT_START

    def __post_init__(self):
        object.__setattr__(self, "listening", tuple(sorted(set(self.listening), key=ListeningSocket.sort_key)))
        object.__setattr__(self, "interfaces", merged_interfaces(self.interfaces))
        if self.destinations is not None:
            object.__setattr__(self, "destinations", summed_destinations(self.destinations))

    def privileged_ports(self) -> list[int]:
        """Listening ports (TCP or UDP, any address) whose bind needed CAP_NET_BIND_SERVICE."""
        return sorted({s.port for s in self.listening if s.port < self.unprivileged_port_start})

    def loopback_only(self, listener: ListeningSocket) -> bool:
        """Whether only the pod itself can reach the listener (a loopback address or device)."""
        loopback_devices = {i.name for i in self.interfaces if i.loopback}
        return listener.loopback_address or listener.interface in loopback_devices

    def reachable_listeners(self) -> tuple[ListeningSocket, ...]:
        return tuple(s for s in self.listening if not self.loopback_only(s))

    def with_destinations(self, destinations: Iterable[Destination] | None) -> NetworkSurface:
        return replace(self, destinations=None if destinations is None else tuple(destinations))

    def merge(self, other: NetworkSurface) -> NetworkSurface:
        """The union of two observations (of one namespace over time, or of replicas).

        Destinations stay unknown if either side did not record them: the unrecorded side may
        have connected anywhere. A port is privileged if it was below the limit of either
        namespace, so the larger limit is kept.
        """
        destinations = None
        if self.destinations is not None and other.destinations is not None:
            destinations = self.destinations + other.destinations
        return NetworkSurface(
            self.listening + other.listening,
            self.interfaces + other.interfaces,
            destinations,
            max(self.unprivileged_port_start, other.unprivileged_port_start),
        )

    def to_json(self) -> dict:
        return {
            "listening": [s.to_json() for s in self.listening],
            "interfaces": [i.to_json() for i in self.interfaces],
            "destinations": None if self.destinations is None else [d.to_json() for d in self.destinations],
            "unprivileged_port_start": self.unprivileged_port_start,
        }

    @classmethod
    def from_json(cls, data, source: str | os.PathLike | None = None, where: str = "network") -> NetworkSurface:
        """The surface in `data` (from to_json), checked against the schema; InputError naming
        `source` and the JSON path of the bad field, `where` being the path of `data` itself."""
        try:
            trace_schema().check(data, SCHEMA_POINTER, (where,))
            return cls._from_checked_json(data, where)
        except SchemaViolation as err:
            raise InputError(source, str(err)) from None

    @classmethod
    def _from_checked_json(cls, data: dict, where: str) -> NetworkSurface:
        """The model from a document that matches the schema; what the schema cannot state (an
        address of the right family, a valid prefix) is a SchemaViolation at the item."""

        def items(key: str, build: type[T]) -> tuple[T, ...]:
            return tuple(construct(build, (where, key, index), item) for index, item in enumerate(data[key]))

        destinations = None if data["destinations"] is None else items("destinations", Destination)
        return cls(
            items("listening", ListeningSocket),
            items("interfaces", Interface),
            destinations,
            data.get("unprivileged_port_start", DEFAULT_UNPRIVILEGED_PORT_START),
        )


def construct(build: type[T], path: tuple, fields: dict) -> T:
    """build(**fields), a ValueError of its checks turned into a SchemaViolation at `path`."""
    try:
        return build(**fields)
    except ValueError as err:
        raise SchemaViolation(path, str(err)) from None


def merge_surfaces(surfaces: Iterable[NetworkSurface]) -> NetworkSurface:
    surfaces = list(surfaces)
    if not surfaces:
        raise ValueError("no network surface to merge")
    merged = surfaces[0]
    for surface in surfaces[1:]:
        merged = merged.merge(surface)
    return merged


def merged_interfaces(interfaces: Iterable[Interface]) -> tuple[Interface, ...]:
    by_name: dict[str, Interface] = {}
    for interface in interfaces:
        known = by_name.get(interface.name)
        by_name[interface.name] = interface if known is None else known.merge(interface)
    return tuple(by_name[name] for name in sorted(by_name))


def summed_destinations(destinations: Iterable[Destination]) -> tuple[Destination, ...]:
    by_key: dict[tuple, Destination] = {}
    for destination in destinations:
        known = by_key.get(destination.key())
        by_key[destination.key()] = (
            destination if known is None else replace(known, count=known.count + destination.count)
        )
    return tuple(by_key[key] for key in sorted(by_key))


def sorted_interface_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    parsed = set()
    for address in addresses:
        try:
            parsed.add(ipaddress.ip_interface(address))
        except (TypeError, ValueError):
            raise ValueError(f"{address!r} is not an address/prefix") from None
    return tuple(str(a) for a in sorted(parsed, key=lambda a: (a.version, a.ip, a.network.prefixlen)))


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def canonical_address(family: str, address: str) -> str:
    """`address` as ipaddress writes it, checked against `family` ("ipv4" or "ipv6")."""
    try:
        ip = ipaddress.ip_address(address)
    except (TypeError, ValueError):
        raise ValueError(f"{address!r} is not an IP address") from None
    if f"ipv{ip.version}" != family:
        raise ValueError(f"{address} is not an {family} address")
    return str(ip)
