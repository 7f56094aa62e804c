"""Network namespaces: named ones for containers (pyroute2), and the one way this project runs
code inside a namespace (`call_in`).

A container joins a named namespace by path (`linux.namespaces` {"type": "network", "path":
...}); the load tester, the readiness probe and the surface observer enter it to reach the
container's 127.0.0.1 or to read its sockets.

`call_in` enters the namespace in a thread of its own (setns), which runs the function and then
ends: the calling thread never changes namespace, so nothing can leave it in the wrong one (an
exception between entering and leaving, a thread switched back to the wrong namespace), and
nothing forks (a fork from the multi-threaded recorder could deadlock on a lock another thread
held). Threads the function starts are created inside the namespace, as setns() applies to the
thread that calls it and the threads it creates afterwards.
"""

from __future__ import annotations

import errno
import os
import re
import threading
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


class ObservationError(Exception):
    """The machine cannot look into the namespace (no privilege to enter it, a kernel without
    sock_diag, a workload process that is gone): exit 3."""


def unique_name(prefix: str = "tracer") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def netns_path(name: str) -> Path:
    return NETNS_DIR / check_name(name)


def check_name(name: str) -> str:
    if not NETNS_NAME.match(name):
        raise InputError(None, f"invalid network namespace name {name!r}")
    return name


def namespace_path(namespace: str | os.PathLike) -> Path:
    """A network namespace file: a name under /var/run/netns, or a path such as /proc/PID/ns/net."""
    text = os.fspath(namespace)
    if not text:
        raise InputError(None, "empty network namespace name")
    return Path(text) if "/" in text else netns_path(text)


def pid_namespace_path(pid: int) -> Path:
    return Path(f"/proc/{pid}/ns/net")


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


# ---------------------------------------------------------------- running code inside


def call_in(namespace: str | os.PathLike, function: Callable[..., T], *args, **kwargs) -> T:
    """function(*args, **kwargs) run by a new thread inside the network namespace (a name or a
    path); its result, or its exception raised here."""
    path = namespace_path(namespace)
    fd = open_namespace(path)
    outcome: dict = {}

    def run_inside() -> None:
        try:
            enter_namespace(fd, path)
            outcome["value"] = function(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 (handed to the caller's thread)
            outcome["error"] = err

    try:
        # A daemon: a caller interrupted while it waits (Ctrl-C) can exit without it.
        worker = threading.Thread(target=run_inside, name=f"netns {path}", daemon=True)
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
        netns.setns(fd, flags=0)
    except OSError as err:
        if err.errno == errno.EINVAL:  # the file is not a network namespace
            raise InputError(path, "not a network namespace") from None
        raise ObservationError(
            f"{path}: cannot enter the network namespace ({os.strerror(err.errno)}; needs CAP_SYS_ADMIN: run as root)"
        ) from None
    wanted, here = os.fstat(fd), os.stat("/proc/thread-self/ns/net")
    if (wanted.st_dev, wanted.st_ino) != (here.st_dev, here.st_ino):
        raise ObservationError(f"{path}: setns() returned but the thread is not in the namespace")
