"""Linux capability names: the kernel's numbering, and the spellings users and manifests use.

The kernel and OCI runtime spec say CAP_CHOWN; Kubernetes' securityContext.capabilities and
Docker's --cap-add say CHOWN. Wherever a capability is given, either spelling in any case is
accepted and written back the kernel's way.
"""

from __future__ import annotations

from tracer.errors import InputError

# By number: include/uapi/linux/capability.h.
CAPABILITY_NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)


HIGHEST_CAPABILITY = len(CAPABILITY_NAMES) - 1  # CAP_CHECKPOINT_RESTORE (40, Linux 5.9)


def capability_name(cap: int) -> str:
    """CAP_CHOWN for 0; ValueError for a number no known capability has (a trace that holds
    one is refused when it is read, never written out as a made-up name)."""
    if not 0 <= cap <= HIGHEST_CAPABILITY:
        raise ValueError(
            f"capability {cap} is unknown (the highest known is {HIGHEST_CAPABILITY}, {CAPABILITY_NAMES[-1]})"
        )
    return CAPABILITY_NAMES[cap]


def normalise_capability(name: str) -> str:
    """CHOWN, chown, cap_chown and CAP_CHOWN all read CAP_CHOWN (known or not)."""
    name = name.strip().upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"


def parse_capability(name: str, option: str = "capability") -> str:
    """The kernel's name for a capability a user gave, or InputError listing the known ones."""
    canonical = normalise_capability(name)
    if canonical not in CAPABILITY_NAMES:
        known = " ".join(known.removeprefix("CAP_") for known in CAPABILITY_NAMES)
        raise InputError(None, f"unknown {option} {name!r} (with or without CAP_, any case): {known}")
    return canonical
