"""Linux capability names by number, as the kernel's uapi/linux/capability.h numbers them.

The highest this tracer knows is CAP_CHECKPOINT_RESTORE (40, Linux 5.9). A number beyond it
in a trace is refused rather than written as a made-up name: a profile must never grant or
drop a capability nobody can name.
"""

from __future__ import annotations

CAPABILITY_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
HIGHEST_CAPABILITY = len(CAPABILITY_NAMES) - 1


def capability_name(cap: int) -> str:
    """CAP_CHOWN for 0; ValueError for a number no known capability has."""
    if not 0 <= cap <= HIGHEST_CAPABILITY:
        raise ValueError(f"capability {cap} is unknown (the highest known is {HIGHEST_CAPABILITY}, {CAPABILITY_NAMES[-1]})")
    return CAPABILITY_NAMES[cap]
