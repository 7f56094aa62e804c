"""What a process's descriptor names, read from /proc while the process holds it.

The BPF program cannot follow a descriptor to its file without reading kernel structs. So
each time it counts a new ioctl row (process, descriptor, request, result) it hands the row's
key to the loader through a ring buffer, and the loader reads /proc/PID/fd/N at once. An
ioctl to /dev/nvidia0 is then told apart from one to a terminal or a socket. Later calls
with the same key add to that row: a descriptor number the same process reused for another
file, with the same request and result, keeps the first file's name. A descriptor closed
before the loader looked (it looks within milliseconds) leaves the device unknown (null in
the trace); one closed and reused by then is named after the new file.
"""

from __future__ import annotations

import os
import re
import threading

# "socket:[123]", "pipe:[456]": the kind without the inode number.
_INODE_SUFFIX = re.compile(r"^(socket|pipe|net):\[\d+\]$")


def descriptor_name(link: str) -> str:
    match = _INODE_SUFFIX.match(link)
    return match[1] if match else link


def read_descriptor(tgid: int, fd: int, proc: str = "/proc") -> str | None:
    try:
        return descriptor_name(os.readlink(f"{proc}/{tgid}/fd/{fd}"))
    except OSError:
        return None


class DescriptorNames:
    """Kernel row key (bytes) -> what its descriptor named when the row appeared. Thread-safe."""

    def __init__(self, proc: str = "/proc"):
        self.proc = proc
        self._names: dict[bytes, str] = {}
        self._lock = threading.Lock()

    def note(self, key: bytes, tgid: int, fd: int) -> None:
        name = read_descriptor(tgid, fd, self.proc)
        if name is not None:
            with self._lock:
                self._names.setdefault(key, name)

    def name(self, key: bytes, tgid: int, fd: int) -> str | None:
        """The name noted for this row, else (the ring buffer was full) what it names now."""
        with self._lock:
            known = self._names.get(key)
        if known is None:
            self.note(key, tgid, fd)
            with self._lock:
                known = self._names.get(key)
        return known
