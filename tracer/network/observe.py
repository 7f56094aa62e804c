"""Observing a network namespace: what listens in it and its interfaces, at one instant, read
from inside it (`observe`), and the recorder's watch over a workload's namespace (`SurfaceWatch`).

Listening sockets come from sock_diag (TCP LISTEN and bound, unconnected UDP; IPv4 and IPv6),
interfaces and their addresses from rtnetlink (both with pyroute2), and the port limit from
net.ipv4.ip_unprivileged_port_start, which must be read by a task inside the namespace:
/proc/sys/net answers for the reading thread's namespace. The namespace is entered through
`tracer.network.netns.call_in`. Outbound destinations are not observed here: the recorder
supplies them (`NetworkSurface.with_destinations`).
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from pyroute2 import DiagSocket, IPRoute
from pyroute2.netlink import NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.diag import SS_CLOSE, SS_LISTEN, MarshalDiag
from pyroute2.netlink.exceptions import NetlinkError

from tracer.network.netns import NETNS_DIR, ObservationError, call_in, pid_namespace_path
from tracer.network.surface import DEFAULT_UNPRIVILEGED_PORT_START, Interface, ListeningSocket, NetworkSurface

UNPRIVILEGED_PORT_START_SYSCTL = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
NLMSG_HEADER_SIZE = 16


def observe(namespace: str | os.PathLike) -> NetworkSurface:
    """The namespace's listeners, interfaces and unprivileged port limit, now (no destinations)."""
    return call_in(namespace, observe_current_namespace)


def observe_current_namespace() -> NetworkSurface:
    """The surface of the calling thread's own network namespace."""
    interfaces = read_interfaces()
    names = {index: interface.name for index, interface in interfaces.items()}
    return NetworkSurface(
        listening=tuple(read_listening_sockets(names)),
        interfaces=tuple(interfaces.values()),
        unprivileged_port_start=read_unprivileged_port_start(),
    )


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
                sockets += [
                    listener(message, protocol, family, interface_names)
                    for message in messages
                    if message["idiag_sport"] != 0
                ]  # port 0: created, never bound
    return sockets


def dump_sockets(diag: DiagSocket, family: int, protocol: int, states: int) -> tuple:
    """The sock_diag messages for one address family and IP protocol in `states`, or ObservationError."""
    try:
        return diag.get_sock_stats(family=family, protocol=protocol, states=states)
    except (NetlinkError, OSError) as err:
        code = err.code if isinstance(err, NetlinkError) else err.errno
        raise ObservationError(
            f"sock_diag cannot list sockets of IP protocol {protocol}, address family "
            f"{family} ({os.strerror(code)}): the kernel lacks its diag module "
            "(tcp_diag, udp_diag) or could not load it"
        ) from None


def listener(message, protocol: str, family: str, interface_names: dict[int, str]) -> ListeningSocket:
    device = message["idiag_if"]
    interface = interface_names.get(device, f"if{device}") if device else None
    return ListeningSocket(protocol, family, message["idiag_src"], message["idiag_sport"], interface)


def read_unprivileged_port_start() -> int:
    try:
        return int(UNPRIVILEGED_PORT_START_SYSCTL.read_text())
    except FileNotFoundError:
        return DEFAULT_UNPRIVILEGED_PORT_START


# ---------------------------------------------------------------- while recording


def workload_namespace(named: str | None, pid: int | None) -> Path | None:
    """The workload's network namespace, if it has one of its own: a named one, else its
    process's; None when it shares ours (its sockets could not be told from the host's).
    ObservationError when it cannot be looked at (the process is gone, or not visible from
    this PID namespace)."""
    path = NETNS_DIR / named if named else pid_namespace_path(pid) if pid else None
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
