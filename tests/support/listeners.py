"""Listening sockets as the network surface names them (tracer.network.surface.ListeningSocket)."""

from __future__ import annotations

from tracer.network.surface import ListeningSocket


def tcp(address: str, port: int, interface: str | None = None) -> ListeningSocket:
    return ListeningSocket("tcp", "ipv6" if ":" in address else "ipv4", address, port, interface)


def udp(address: str, port: int) -> ListeningSocket:
    return ListeningSocket("udp", "ipv6" if ":" in address else "ipv4", address, port)
