"""Names for the argument values the recorder records: what people read instead of numbers.

Values are the Linux UAPI's (the same on x86_64 and aarch64). A value with no name here is
printed as a number, never guessed.
"""

from __future__ import annotations

CLONE_FLAGS = {
    0x00000100: "CLONE_VM",
    0x00000200: "CLONE_FS",
    0x00000400: "CLONE_FILES",
    0x00000800: "CLONE_SIGHAND",
    0x00001000: "CLONE_PIDFD",
    0x00002000: "CLONE_PTRACE",
    0x00004000: "CLONE_VFORK",
    0x00008000: "CLONE_PARENT",
    0x00010000: "CLONE_THREAD",
    0x00020000: "CLONE_NEWNS",
    0x00040000: "CLONE_SYSVSEM",
    0x00080000: "CLONE_SETTLS",
    0x00100000: "CLONE_PARENT_SETTID",
    0x00200000: "CLONE_CHILD_CLEARTID",
    0x00400000: "CLONE_DETACHED",
    0x00800000: "CLONE_UNTRACED",
    0x01000000: "CLONE_CHILD_SETTID",
    0x02000000: "CLONE_NEWCGROUP",
    0x04000000: "CLONE_NEWUTS",
    0x08000000: "CLONE_NEWIPC",
    0x10000000: "CLONE_NEWUSER",
    0x20000000: "CLONE_NEWPID",
    0x40000000: "CLONE_NEWNET",
    0x80000000: "CLONE_IO",
    0x100000000: "CLONE_CLEAR_SIGHAND",
    0x200000000: "CLONE_INTO_CGROUP",
}
CLONE_NEWTIME = 0x80  # clone3 and unshare only: in clone's flags this bit is part of the exit signal (CSIGNAL, 0xff)
# The namespace flags clone can take; Docker's default profile refuses them all without
# CAP_SYS_ADMIN (its mask 0x7E020000).
CLONE_NAMESPACE_FLAGS = 0x7E020000
NAMESPACE_FLAGS = {
    0x00020000: "CLONE_NEWNS",
    0x02000000: "CLONE_NEWCGROUP",
    0x04000000: "CLONE_NEWUTS",
    0x08000000: "CLONE_NEWIPC",
    0x10000000: "CLONE_NEWUSER",
    0x20000000: "CLONE_NEWPID",
    0x40000000: "CLONE_NEWNET",
    CLONE_NEWTIME: "CLONE_NEWTIME",
}

ADDRESS_FAMILIES = {
    0: "AF_UNSPEC",
    1: "AF_UNIX",
    2: "AF_INET",
    3: "AF_AX25",
    4: "AF_IPX",
    5: "AF_APPLETALK",
    6: "AF_NETROM",
    7: "AF_BRIDGE",
    8: "AF_ATMPVC",
    9: "AF_X25",
    10: "AF_INET6",
    11: "AF_ROSE",
    12: "AF_DECnet",
    13: "AF_NETBEUI",
    14: "AF_SECURITY",
    15: "AF_KEY",
    16: "AF_NETLINK",
    17: "AF_PACKET",
    18: "AF_ASH",
    19: "AF_ECONET",
    20: "AF_ATMSVC",
    21: "AF_RDS",
    22: "AF_SNA",
    23: "AF_IRDA",
    24: "AF_PPPOX",
    25: "AF_WANPIPE",
    26: "AF_LLC",
    27: "AF_IB",
    28: "AF_MPLS",
    29: "AF_CAN",
    30: "AF_TIPC",
    31: "AF_BLUETOOTH",
    32: "AF_IUCV",
    33: "AF_RXRPC",
    34: "AF_ISDN",
    35: "AF_PHONET",
    36: "AF_IEEE802154",
    37: "AF_CAIF",
    38: "AF_ALG",
    39: "AF_NFC",
    40: "AF_VSOCK",
    41: "AF_KCM",
    42: "AF_QIPCRTR",
    43: "AF_SMC",
    44: "AF_XDP",
    45: "AF_MCTP",
}
AF_NETLINK = 16
NETLINK_PROTOCOLS = {
    0: "NETLINK_ROUTE",
    1: "NETLINK_UNUSED",
    2: "NETLINK_USERSOCK",
    3: "NETLINK_FIREWALL",
    4: "NETLINK_SOCK_DIAG",
    5: "NETLINK_NFLOG",
    6: "NETLINK_XFRM",
    7: "NETLINK_SELINUX",
    8: "NETLINK_ISCSI",
    9: "NETLINK_AUDIT",
    10: "NETLINK_FIB_LOOKUP",
    11: "NETLINK_CONNECTOR",
    12: "NETLINK_NETFILTER",
    13: "NETLINK_IP6_FW",
    14: "NETLINK_DNRTMSG",
    15: "NETLINK_KOBJECT_UEVENT",
    16: "NETLINK_GENERIC",
    18: "NETLINK_SCSITRANSPORT",
    19: "NETLINK_ECRYPTFS",
    20: "NETLINK_RDMA",
    21: "NETLINK_CRYPTO",
    22: "NETLINK_SMC",
}
SOCKET_TYPES = {
    1: "SOCK_STREAM",
    2: "SOCK_DGRAM",
    3: "SOCK_RAW",
    4: "SOCK_RDM",
    5: "SOCK_SEQPACKET",
    6: "SOCK_DCCP",
    10: "SOCK_PACKET",
}
SOCKET_TYPE_FLAGS = {0o4000: "SOCK_NONBLOCK", 0o2000000: "SOCK_CLOEXEC"}  # or'ed into the type

PERSONALITIES = {
    0: "PER_LINUX",
    8: "PER_LINUX32",
    0x20000: "UNAME26",
    0x20008: "UNAME26|PER_LINUX32",
    0xFFFFFFFF: "query (0xffffffff)",
    0x0040000: "ADDR_NO_RANDOMIZE",
    0x0400000: "READ_IMPLIES_EXEC",
}
PERSONALITY_FLAGS = {
    0x0020000: "UNAME26",
    0x0040000: "ADDR_NO_RANDOMIZE",
    0x0080000: "FDPIC_FUNCPTRS",
    0x0100000: "MMAP_PAGE_ZERO",
    0x0200000: "ADDR_COMPAT_LAYOUT",
    0x0400000: "READ_IMPLIES_EXEC",
    0x0800000: "ADDR_LIMIT_32BIT",
    0x1000000: "SHORT_INODE",
    0x2000000: "WHOLE_SECONDS",
    0x4000000: "STICKY_TIMEOUTS",
    0x8000000: "ADDR_LIMIT_3GB",
}

PRCTL_OPTIONS = {
    1: "PR_SET_PDEATHSIG",
    2: "PR_GET_PDEATHSIG",
    3: "PR_GET_DUMPABLE",
    4: "PR_SET_DUMPABLE",
    5: "PR_GET_UNALIGN",
    6: "PR_SET_UNALIGN",
    7: "PR_GET_KEEPCAPS",
    8: "PR_SET_KEEPCAPS",
    9: "PR_GET_FPEMU",
    10: "PR_SET_FPEMU",
    11: "PR_GET_FPEXC",
    12: "PR_SET_FPEXC",
    13: "PR_GET_TIMING",
    14: "PR_SET_TIMING",
    15: "PR_SET_NAME",
    16: "PR_GET_NAME",
    19: "PR_GET_ENDIAN",
    20: "PR_SET_ENDIAN",
    21: "PR_GET_SECCOMP",
    22: "PR_SET_SECCOMP",
    23: "PR_CAPBSET_READ",
    24: "PR_CAPBSET_DROP",
    25: "PR_GET_TSC",
    26: "PR_SET_TSC",
    27: "PR_GET_SECUREBITS",
    28: "PR_SET_SECUREBITS",
    29: "PR_SET_TIMERSLACK",
    30: "PR_GET_TIMERSLACK",
    31: "PR_TASK_PERF_EVENTS_DISABLE",
    32: "PR_TASK_PERF_EVENTS_ENABLE",
    33: "PR_MCE_KILL",
    34: "PR_MCE_KILL_GET",
    35: "PR_SET_MM",
    36: "PR_SET_CHILD_SUBREAPER",
    37: "PR_GET_CHILD_SUBREAPER",
    38: "PR_SET_NO_NEW_PRIVS",
    39: "PR_GET_NO_NEW_PRIVS",
    40: "PR_GET_TID_ADDRESS",
    41: "PR_SET_THP_DISABLE",
    42: "PR_GET_THP_DISABLE",
    45: "PR_SET_FP_MODE",
    46: "PR_GET_FP_MODE",
    47: "PR_CAP_AMBIENT",
    50: "PR_SVE_SET_VL",
    51: "PR_SVE_GET_VL",
    52: "PR_GET_SPECULATION_CTRL",
    53: "PR_SET_SPECULATION_CTRL",
    54: "PR_PAC_RESET_KEYS",
    55: "PR_SET_TAGGED_ADDR_CTRL",
    56: "PR_GET_TAGGED_ADDR_CTRL",
    57: "PR_SET_IO_FLUSHER",
    58: "PR_GET_IO_FLUSHER",
    59: "PR_SET_SYSCALL_USER_DISPATCH",
    0x53564D41: "PR_SET_VMA",
    0x59616D61: "PR_SET_PTRACER",
    62: "PR_SCHED_CORE",
    65: "PR_SET_MDWE",
    66: "PR_GET_MDWE",
    71: "PR_GET_AUXV",
}

SETNS_TYPES = {0: "any namespace type", **{flag: name for flag, name in NAMESPACE_FLAGS.items()}}

# Well-known ioctl requests (asm-generic numbering, as on x86_64 and aarch64).
IOCTL_REQUESTS = {
    0x5401: "TCGETS",
    0x5402: "TCSETS",
    0x5403: "TCSETSW",
    0x5404: "TCSETSF",
    0x540B: "TCFLSH",
    0x540E: "TIOCSCTTY",
    0x540F: "TIOCGPGRP",
    0x5410: "TIOCSPGRP",
    0x5412: "TIOCSTI",
    0x5413: "TIOCGWINSZ",
    0x5414: "TIOCSWINSZ",
    0x541B: "FIONREAD",
    0x541C: "TIOCLINUX",
    0x5421: "FIONBIO",
    0x5422: "TIOCNOTTY",
    0x5429: "TIOCGSID",
    0x5450: "FIONCLEX",
    0x5451: "FIOCLEX",
    0x5452: "FIOASYNC",
    0x80045430: "TIOCGPTN",
    0x40045431: "TIOCSPTLCK",
    0x8910: "SIOCGIFNAME",
    0x8912: "SIOCGIFCONF",
    0x8913: "SIOCGIFFLAGS",
    0x8915: "SIOCGIFADDR",
    0x8921: "SIOCGIFMTU",
    0x8927: "SIOCGIFHWADDR",
    0x8933: "SIOCGIFINDEX",
    0x8B01: "SIOCGIWNAME",
    0x80086601: "FS_IOC_GETFLAGS",
    0x40086602: "FS_IOC_SETFLAGS",
    0x5460: "FIOQSIZE",
    0xC0185879: "FICLONERANGE",
    0x40049409: "FICLONE",
}
# ioctl "types" (the magic byte of _IOC) of drivers a GPU node's workloads talk to.
IOCTL_TYPES = {
    ord("F"): "NVIDIA (nvidia.ko)",
    ord("T"): "terminal",
    ord("f"): "file system",
    ord("d"): "DRM",
    0x89: "socket",
    ord("X"): "file system",
}
IOC_DIRECTIONS = {0: "_IO", 1: "_IOW", 2: "_IOR", 3: "_IOWR"}


def flag_names(value: int, names: dict[int, str]) -> str:
    """'A|B|0x40' for the bits of value, named where known."""
    parts, rest = [], value
    for bit, name in sorted(names.items()):
        if bit and value & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


def clone_namespaces(flags: int) -> str:
    """The namespace part of clone's flags (bit 0x80 belongs to the exit signal there)."""
    ns = flags & CLONE_NAMESPACE_FLAGS
    return flag_names(ns, NAMESPACE_FLAGS) if ns else "no namespace flags"


def family_name(family: int) -> str:
    return ADDRESS_FAMILIES.get(family, f"family {family}")


def socket_name(family: int, protocol: int | None = None) -> str:
    if family == AF_NETLINK and protocol is not None:
        return f"AF_NETLINK {NETLINK_PROTOCOLS.get(protocol, f'protocol {protocol}')}"
    return family_name(family)


def personality_name(persona: int) -> str:
    if persona in PERSONALITIES:
        return PERSONALITIES[persona]
    base = persona & 0xFF
    return f"{'PER_LINUX' if base == 0 else hex(base)}|{flag_names(persona & ~0xFF, PERSONALITY_FLAGS)} ({persona:#x})"


def prctl_name(option: int) -> str:
    return PRCTL_OPTIONS.get(option, f"option {option}")


def ioctl_name(request: int) -> str:
    """TCGETS, or the request decoded: _IOWR('F', 0x2b, 48) (NVIDIA (nvidia.ko))."""
    request &= 0xFFFFFFFF
    if request in IOCTL_REQUESTS:
        return IOCTL_REQUESTS[request]
    direction, size, kind, number = request >> 30, (request >> 16) & 0x3FFF, (request >> 8) & 0xFF, request & 0xFF
    letter = repr(chr(kind)) if 32 < kind < 127 else hex(kind)
    decoded = f"{IOC_DIRECTIONS[direction]}({letter}, {number:#x}" + (f", {size})" if direction else ")")
    driver = IOCTL_TYPES.get(kind)
    return f"{decoded} [{driver}]" if driver else f"{decoded} ({request:#x})"
