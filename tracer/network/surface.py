"""The network surface of a container: what listens in its network namespace, its interfaces,
and where it connects to.

`observe(namespace)` reads one network namespace at one instant, from inside it: listening
sockets through sock_diag (TCP LISTEN and bound, unconnected UDP; IPv4 and IPv6), interfaces
and their addresses through rtnetlink (both with pyroute2), and
net.ipv4.ip_unprivileged_port_start. Outbound destinations are not observed here: the recorder
supplies them (`with_destinations`). `NetworkSurface` is the data model, with its JSON form (the
trace's optional `network` section) and the union of observations (`merge`).

The namespace is entered by a thread of its own (setns), which does the whole observation and
then ends: the calling thread never changes namespace, so nothing can leave it in the wrong one,
and nothing forks (a fork from the multi-threaded recorder could deadlock on a lock another
thread held). The sysctl must be read by a task inside the namespace anyway: /proc/sys/net
answers for the reading thread's namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from pyroute2 import DiagSocket, IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink import NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import SS_CLOSE, SS_LISTEN, MarshalDiag
from pyroute2.netlink.exceptions import NetlinkError

from tracer.errors import InputError
from tracer.network.netns import NETNS_DIR

UNPRIVILEGED_PORT_START_SYSCTL = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
DEFAULT_UNPRIVILEGED_PORT_START = 1024  # kernels before 4.11 have no sysctl: the fixed limit
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
NLMSG_HEADER_SIZE = 16

T = TypeVar("T")


class ObservationError(Exception):
    """The machine cannot observe the namespace (no privilege, a kernel without sock_diag): exit 3."""


# ---------------------------------------------------------------- data model


@dataclass(frozen=True)
class ListeningSocket:
    """A socket that accepts traffic: TCP in LISTEN, or UDP bound to a port and not connected."""

    protocol: str               # "tcp" | "udp"
    family: str                 # "ipv4" | "ipv6"
    address: str                # bound address; 0.0.0.0 or :: for every address
    port: int
    interface: str | None = None  # SO_BINDTODEVICE, if the socket is bound to one device

    def __post_init__(self):
        check_protocol(self.protocol)
        object.__setattr__(self, "address", canonical_address(self.family, self.address))
        check_port(self.port)

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
        return {"protocol": self.protocol, "family": self.family, "address": self.address,
                "port": self.port, "interface": self.interface}

    @classmethod
    def from_json(cls, data, where: str) -> ListeningSocket:
        fields = json_object(data, where, required=("protocol", "family", "address", "port"),
                             optional=("interface",))
        return json_build(cls, where, **fields)


@dataclass(frozen=True)
class Interface:
    name: str
    kind: str | None            # rtnetlink link kind: "veth", "bridge", ...; None for lo and physical devices
    up: bool                    # administratively up (IFF_UP)
    loopback: bool              # IFF_LOOPBACK
    addresses: tuple[str, ...]  # "address/prefix", IPv4 then IPv6

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"interface name must be a non-empty string, not {self.name!r}")
        if self.kind is not None and not isinstance(self.kind, str):
            raise ValueError(f"kind must be a string or null, not {self.kind!r}")
        object.__setattr__(self, "addresses", sorted_interface_addresses(self.addresses))

    @property
    def veth(self) -> bool:
        return self.kind == "veth"

    def merge(self, other: Interface) -> Interface:
        return Interface(self.name, self.kind or other.kind, self.up or other.up,
                         self.loopback or other.loopback, self.addresses + other.addresses)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "up": self.up, "loopback": self.loopback,
                "addresses": list(self.addresses)}

    @classmethod
    def from_json(cls, data, where: str) -> Interface:
        fields = json_object(data, where, required=("name", "kind", "up", "loopback", "addresses"))
        for flag in ("up", "loopback"):
            if not isinstance(fields[flag], bool):
                raise InputError(None, f"{where}.{flag}: expected true or false")
        if not isinstance(fields["addresses"], list):
            raise InputError(None, f"{where}.addresses: expected a list")
        fields["addresses"] = tuple(fields["addresses"])
        return json_build(cls, where, **fields)


@dataclass(frozen=True)
class Destination:
    """Where the workload sent traffic, as the recorder saw it, and how many times."""

    protocol: str
    family: str
    address: str
    port: int
    count: int

    def __post_init__(self):
        check_protocol(self.protocol)
        object.__setattr__(self, "address", canonical_address(self.family, self.address))
        check_port(self.port)
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"count must be a non-negative integer, not {self.count!r}")

    def key(self) -> tuple:
        return (self.protocol, self.family, ipaddress.ip_address(self.address), self.port)

    def describe(self) -> str:
        host = f"[{self.address}]" if self.family == "ipv6" else self.address
        return f"{self.protocol} {host}:{self.port}"

    def to_json(self) -> dict:
        return {"protocol": self.protocol, "family": self.family, "address": self.address,
                "port": self.port, "count": self.count}

    @classmethod
    def from_json(cls, data, where: str) -> Destination:
        fields = json_object(data, where, required=("protocol", "family", "address", "port", "count"))
        return json_build(cls, where, **fields)


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
        start = self.unprivileged_port_start
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= 65535:
            raise ValueError(f"unprivileged_port_start must be 0..65535, not {start!r}")

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
        return NetworkSurface(self.listening + other.listening, self.interfaces + other.interfaces,
                              destinations, max(self.unprivileged_port_start, other.unprivileged_port_start))

    def to_json(self) -> dict:
        return {
            "listening": [s.to_json() for s in self.listening],
            "interfaces": [i.to_json() for i in self.interfaces],
            "destinations": None if self.destinations is None else [d.to_json() for d in self.destinations],
            "unprivileged_port_start": self.unprivileged_port_start,
        }

    @classmethod
    def from_json(cls, data, source: str | os.PathLike | None = None, where: str = "network") -> NetworkSurface:
        """The surface in `data` (from to_json), or InputError naming `source` and the bad field."""
        try:
            fields = json_object(data, where, required=("listening", "interfaces", "destinations"),
                                 optional=("unprivileged_port_start",))
            listening = [ListeningSocket.from_json(item, f"{where}.listening[{n}]")
                         for n, item in enumerate(json_list(fields["listening"], f"{where}.listening"))]
            interfaces = [Interface.from_json(item, f"{where}.interfaces[{n}]")
                          for n, item in enumerate(json_list(fields["interfaces"], f"{where}.interfaces"))]
            destinations = None
            if fields["destinations"] is not None:
                destinations = tuple(Destination.from_json(item, f"{where}.destinations[{n}]") for n, item
                                     in enumerate(json_list(fields["destinations"], f"{where}.destinations")))
            start = fields.get("unprivileged_port_start", DEFAULT_UNPRIVILEGED_PORT_START)
            return json_build(cls, f"{where}.unprivileged_port_start", listening=tuple(listening),
                              interfaces=tuple(interfaces), destinations=destinations,
                              unprivileged_port_start=start)
        except InputError as err:
            raise InputError(source, err.problem) from None


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
        by_key[destination.key()] = destination if known is None else replace(
            known, count=known.count + destination.count)
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


def check_protocol(protocol) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")


def canonical_address(family, address) -> str:
    """`address` as ipaddress writes it, checked against `family`."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    try:
        ip = ipaddress.ip_address(address)
    except (TypeError, ValueError):
        raise ValueError(f"{address!r} is not an IP address") from None
    if f"ipv{ip.version}" != family:
        raise ValueError(f"{address} is not an {family} address")
    return str(ip)


def check_port(port) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer 1..65535, not {port!r}")


# ---------------------------------------------------------------- JSON checks


def json_object(data, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise InputError(None, f"{where}: expected an object")
    missing = [key for key in required if key not in data]
    if missing:
        raise InputError(None, f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise InputError(None, f"{where}: unknown field {', '.join(unknown)}")
    return dict(data)


def json_list(data, where: str) -> list:
    if not isinstance(data, list):
        raise InputError(None, f"{where}: expected a list")
    return data


def json_build(cls: type[T], where: str, **fields) -> T:
    """cls(**fields), its validation failure turned into InputError at `where`."""
    try:
        return cls(**fields)
    except ValueError as err:
        raise InputError(None, f"{where}: {err}") from None


# ---------------------------------------------------------------- entering a namespace


def namespace_path(namespace: str | os.PathLike) -> Path:
    """A network namespace file: a name under /run/netns, or a path such as /proc/PID/ns/net."""
    text = os.fspath(namespace)
    if not text:
        raise InputError(None, "empty network namespace name")
    return Path(text) if "/" in text else NETNS_DIR / text


def pid_namespace_path(pid: int) -> Path:
    return Path(f"/proc/{pid}/ns/net")


def call_in_namespace(namespace: str | os.PathLike, function: Callable[[], T]) -> T:
    """function() run by a new thread inside the network namespace; its result or its exception."""
    path = namespace_path(namespace)
    fd = open_namespace(path)
    outcome: dict = {}

    def run_inside() -> None:
        try:
            enter_namespace(fd, path)
            outcome["value"] = function()
        except BaseException as err:  # noqa: BLE001 (handed to the caller's thread)
            outcome["error"] = err

    try:
        worker = threading.Thread(target=run_inside, name=f"netns {path}")
        worker.start()
        worker.join()
    finally:
        os.close(fd)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def open_namespace(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(path, "no such network namespace") from None
    except OSError as err:
        raise ObservationError(f"{path}: cannot open: {err.strerror}") from None


def enter_namespace(fd: int, path: Path) -> None:
    """setns() for the calling thread only (the thread runs inside until it ends)."""
    try:
        pyroute2_netns.setns(fd, flags=0)
    except OSError as err:
        if err.errno == errno.EINVAL:  # the file is not a network namespace
            raise InputError(path, "not a network namespace") from None
        raise ObservationError(f"{path}: cannot enter the network namespace ({os.strerror(err.errno)}; "
                               "needs CAP_SYS_ADMIN: run as root)") from None
    wanted, here = os.fstat(fd), os.stat("/proc/thread-self/ns/net")
    if (wanted.st_dev, wanted.st_ino) != (here.st_dev, here.st_ino):
        raise ObservationError(f"{path}: setns() returned but the thread is not in the namespace")


# ---------------------------------------------------------------- observing


def observe(namespace: str | os.PathLike) -> NetworkSurface:
    """The namespace's listeners, interfaces and unprivileged port limit, now (no destinations)."""
    return call_in_namespace(namespace, observe_current_namespace)


def observe_current_namespace() -> NetworkSurface:
    """The surface of the calling thread's own network namespace."""
    interfaces = read_interfaces()
    names = {index: interface.name for index, interface in interfaces.items()}
    return NetworkSurface(listening=tuple(read_listening_sockets(names)),
                          interfaces=tuple(interfaces.values()),
                          unprivileged_port_start=read_unprivileged_port_start())


def read_interfaces() -> dict[int, Interface]:
    """Every interface by index, with its addresses (rtnetlink)."""
    try:
        with IPRoute() as ipr:
            links = list(ipr.get_links())
            addresses = list(ipr.get_addr())
    except (NetlinkError, OSError) as err:
        raise ObservationError(f"cannot read interfaces: {err}") from None
    by_index: dict[int, list[str]] = {}
    for message in addresses:
        address = message.get("IFA_LOCAL") or message.get("IFA_ADDRESS")
        by_index.setdefault(message["index"], []).append(f"{address}/{message['prefixlen']}")
    return {
        link["index"]: Interface(
            name=link.get("IFLA_IFNAME"),
            kind=link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
            up=bool(link["flags"] & IFF_UP),
            loopback=bool(link["flags"] & IFF_LOOPBACK),
            addresses=tuple(by_index.get(link["index"], ())),
        )
        for link in links
    }


# Which sock_diag states make a listener: TCP sockets in LISTEN, UDP sockets that are bound and
# not connected (a connected UDP socket, such as a resolver's, only hears its peer).
LISTENER_STATES = {"tcp": 1 << SS_LISTEN, "udp": 1 << SS_CLOSE}


class DumpErrorMarshal(MarshalDiag):
    """MarshalDiag that keeps the error a sock_diag dump ends with.

    The kernel answers a protocol it has no diag handler for (udp_diag not built or not
    loadable) with NLMSG_DONE carrying -ENOENT, which pyroute2's DiagSocket drops: UDP listeners
    would look absent instead of unknown.
    """

    def parse_one_message(self, key, flags, sequence_number, data, offset, length):
        message = super().parse_one_message(key, flags, sequence_number, data, offset, length)
        (message_type,) = struct.unpack_from("H", data, offset + 4)
        if message_type in (NLMSG_ERROR, NLMSG_DONE) and length >= NLMSG_HEADER_SIZE + 4:
            (code,) = struct.unpack_from("i", data, offset + NLMSG_HEADER_SIZE)
            if code < 0:
                message["header"]["error"] = NetlinkError(-code)
        return message


def open_diag_socket() -> DiagSocket:
    try:
        diag = DiagSocket()
    except OSError as err:
        raise ObservationError(f"cannot open a sock_diag socket: {err.strerror}") from None
    diag.set_marshal(DumpErrorMarshal())
    diag.bind()
    return diag


def read_listening_sockets(interface_names: dict[int, str]) -> list[ListeningSocket]:
    sockets = []
    with open_diag_socket() as diag:
        for protocol, protocol_number in PROTOCOLS.items():
            for family, family_number in FAMILIES.items():
                messages = dump_sockets(diag, family_number, protocol_number, LISTENER_STATES[protocol])
                sockets += [listener(message, protocol, family, interface_names) for message in messages
                            if message["idiag_sport"] != 0]  # port 0: created, never bound
    return sockets


def dump_sockets(diag: DiagSocket, family: int, protocol: int, states: int) -> tuple:
    """The sock_diag messages for one address family and IP protocol in `states`, or ObservationError."""
    try:
        return diag.get_sock_stats(family=family, protocol=protocol, states=states)
    except (NetlinkError, OSError) as err:
        code = err.code if isinstance(err, NetlinkError) else err.errno
        raise ObservationError(f"sock_diag cannot list sockets of IP protocol {protocol}, address family "
                               f"{family} ({os.strerror(code)}): the kernel lacks its diag module "
                               "(tcp_diag, udp_diag) or could not load it") from None


def listener(message, protocol: str, family: str, interface_names: dict[int, str]) -> ListeningSocket:
    device = message["idiag_if"]
    interface = interface_names.get(device, f"if{device}") if device else None
    return ListeningSocket(protocol, family, message["idiag_src"],
                           message["idiag_sport"], interface)


def read_unprivileged_port_start() -> int:
    try:
        return int(UNPRIVILEGED_PORT_START_SYSCTL.read_text())
    except FileNotFoundError:
        return DEFAULT_UNPRIVILEGED_PORT_START


# ---------------------------------------------------------------- text


def describe(surface: NetworkSurface) -> str:
    """Lines for people: listeners, interfaces, privileged ports, destinations."""
    lines = ["listening"]
    for s in surface.listening:
        reach = "loopback only" if surface.loopback_only(s) else "reachable"
        lines.append(f"  {s.describe():<40} {reach}")
    if not surface.listening:
        lines.append("  nothing")
    lines.append("interfaces")
    for i in surface.interfaces:
        traits = ", ".join(filter(None, ["up" if i.up else "down", "loopback" if i.loopback else "", i.kind]))
        lines.append(f"  {i.name:<16} {traits:<20} {' '.join(i.addresses) or '-'}")
    ports = surface.privileged_ports()
    lines.append(f"privileged ports (below {surface.unprivileged_port_start}, need CAP_NET_BIND_SERVICE): "
                 f"{' '.join(map(str, ports)) or 'none'}")
    if surface.destinations is None:
        lines.append("destinations not recorded")
    else:
        lines.append("destinations")
        lines.extend(f"  {d.describe():<40} {d.count}" for d in surface.destinations)
        if not surface.destinations:
            lines.append("  none")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- while recording


def workload_namespace(named: str | None, pid: int | None) -> Path | None:
    """The workload's network namespace, if it has one of its own: a named one, else its
    process's; None when it shares ours (its sockets could not be told from the host's).
    ObservationError when it cannot be looked at (the process is gone, or not visible from
    this PID namespace)."""
    path = Path(f"/run/netns/{named}") if named else pid_namespace_path(pid) if pid else None
    if path is None:
        return None
    try:
        theirs, ours = path.stat(), Path("/proc/self/ns/net").stat()
    except OSError as err:
        raise ObservationError(f"cannot open {path}: {err.strerror or err}") from None
    return None if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) else path


class SurfaceWatch:
    """What a recorded workload listens on, observed at chosen moments (readiness, each
    checkpoint, before it stops: a listener opened and closed in between is not seen), merged.
    Where connect() went is recorded by the kernel as arguments; it is not turned into
    destinations here (the protocol of a connect is not in its arguments), so `destinations`
    stays null: not recorded. Why nothing could be observed is kept (`not_observed`)."""

    def __init__(self, named: str | None, pid_of):
        self.named, self.pid_of = named, pid_of
        self.surface: NetworkSurface | None = None
        self.problem: str | None = None
        self.shares_ours = False  # in our namespace (or no process named): nothing of its own to observe
        self.moments: set[str] = set()

    def observe_once(self, moment: str) -> None:
        """Observe at MOMENT (readiness, the end) once, however often it is asked."""
        if moment not in self.moments:
            self.moments.add(moment)
            self.observe()

    def observe(self) -> None:
        try:
            namespace = workload_namespace(self.named, self.pid_of())
            if namespace is None:
                self.shares_ours = True
                return
            seen = observe(namespace)
        except (ObservationError, OSError) as err:  # the workload may be gone: keep what was seen
            self.problem = str(err)
            return
        self.surface = seen if self.surface is None else self.surface.merge(seen)

    def to_json(self) -> dict | None:
        return None if self.surface is None else self.surface.to_json()

    @property
    def not_observed(self) -> str | None:
        """Why the workload's own network namespace was never observed, if it was not."""
        return self.problem if self.surface is None and not self.shares_ours else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server started next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
