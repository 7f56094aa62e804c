"""Named network namespaces for containers (pyroute2), and running code inside them.

A container joins the namespace by path (`linux.namespaces` {"type": "network", "path":
...}); the load tester enters the same namespace to reach the container's 127.0.0.1.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pyroute2 import NetNS, netns

from tracer.errors import InputError

NETNS_DIR = Path("/var/run/netns")
NETNS_NAME = re.compile(r"^[\w.-]{1,64}$")
T = TypeVar("T")


def unique_name(prefix: str = "tracer") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def netns_path(name: str) -> Path:
    return NETNS_DIR / check_name(name)


@contextmanager
def network_namespace(name: str | None = None) -> Iterator[Path]:
    """Create a named netns with `lo` up, yield its path, remove it afterwards."""
    name = check_name(name or unique_name())
    netns.create(name)
    try:
        bring_loopback_up(name)
        yield netns_path(name)
    finally:
        netns.remove(name)


def bring_loopback_up(name: str) -> None:
    with NetNS(name) as ns:
        (index,) = ns.link_lookup(ifname="lo")
        ns.link("set", index=index, state="up")


@contextmanager
def inside(name: str) -> Iterator[None]:
    """Move the calling thread into netns `name` for the block.

    setns() changes only the calling thread; threads it starts inside the block inherit
    the namespace, so a load test's worker threads must be started within it.
    """
    path = netns_path(name)
    if not path.exists():
        raise InputError(path, "no such network namespace")
    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


def call_in(name: str, function: Callable[..., T], *args, **kwargs) -> T:
    """Call `function(*args, **kwargs)` with the calling thread inside netns `name`."""
    with inside(name):
        return function(*args, **kwargs)


def run_in(name: str, argv: list[str], **run_kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(argv) inside netns `name` (via `ip netns exec`)."""
    return subprocess.run(["ip", "netns", "exec", check_name(name), *argv], **run_kwargs)


def check_name(name: str) -> str:
    if not NETNS_NAME.match(name):
        raise InputError(None, f"invalid network namespace name {name!r}")
    return name
