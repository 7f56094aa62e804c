"""Argument conditions of a seccomp rule, in words a reviewer reads: `flags & (CLONE_NEWNS|...)
== 0` becomes "none of CLONE_NEWNS, CLONE_NEWUTS, ... set", `domain == 2` becomes
"domain == AF_INET (2)".

Values are named for the arguments that profiles condition on in practice (clone, unshare and
setns namespace flags, socket families and types, personality, memory protection, prctl options,
ioctl requests, fcntl commands), with x86_64 and aarch64 argument positions. Anything else is
shown as its number, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

CLONE_FLAGS = {
    "CLONE_VM": 0x100,
    "CLONE_FS": 0x200,
    "CLONE_FILES": 0x400,
    "CLONE_SIGHAND": 0x800,
    "CLONE_PIDFD": 0x1000,
    "CLONE_PTRACE": 0x2000,
    "CLONE_VFORK": 0x4000,
    "CLONE_PARENT": 0x8000,
    "CLONE_THREAD": 0x10000,
    "CLONE_NEWNS": 0x20000,
    "CLONE_SYSVSEM": 0x40000,
    "CLONE_SETTLS": 0x80000,
    "CLONE_PARENT_SETTID": 0x100000,
    "CLONE_CHILD_CLEARTID": 0x200000,
    "CLONE_DETACHED": 0x400000,
    "CLONE_UNTRACED": 0x800000,
    "CLONE_CHILD_SETTID": 0x1000000,
    "CLONE_NEWCGROUP": 0x2000000,
    "CLONE_NEWUTS": 0x4000000,
    "CLONE_NEWIPC": 0x8000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_IO": 0x80000000,
}
# unshare(2) and setns(2) take the namespace flags, plus CLONE_NEWTIME (in clone(2) that bit is
# part of the exit signal).
NAMESPACE_FLAGS = {name: value for name, value in CLONE_FLAGS.items() if name.startswith("CLONE_NEW")} | {
    "CLONE_NEWTIME": 0x80,
    "CLONE_FILES": 0x400,
    "CLONE_FS": 0x200,
    "CLONE_SYSVSEM": 0x40000,
}

ADDRESS_FAMILIES = {
    "AF_UNSPEC": 0,
    "AF_UNIX": 1,
    "AF_INET": 2,
    "AF_AX25": 3,
    "AF_IPX": 4,
    "AF_APPLETALK": 5,
    "AF_NETROM": 6,
    "AF_BRIDGE": 7,
    "AF_ATMPVC": 8,
    "AF_X25": 9,
    "AF_INET6": 10,
    "AF_ROSE": 11,
    "AF_DECnet": 12,
    "AF_NETBEUI": 13,
    "AF_SECURITY": 14,
    "AF_KEY": 15,
    "AF_NETLINK": 16,
    "AF_PACKET": 17,
    "AF_ASH": 18,
    "AF_ECONET": 19,
    "AF_ATMSVC": 20,
    "AF_RDS": 21,
    "AF_SNA": 22,
    "AF_IRDA": 23,
    "AF_PPPOX": 24,
    "AF_WANPIPE": 25,
    "AF_LLC": 26,
    "AF_IB": 27,
    "AF_MPLS": 28,
    "AF_CAN": 29,
    "AF_TIPC": 30,
    "AF_BLUETOOTH": 31,
    "AF_IUCV": 32,
    "AF_RXRPC": 33,
    "AF_ISDN": 34,
    "AF_PHONET": 35,
    "AF_IEEE802154": 36,
    "AF_CAIF": 37,
    "AF_ALG": 38,
    "AF_NFC": 39,
    "AF_VSOCK": 40,
    "AF_KCM": 41,
    "AF_QIPCRTR": 42,
    "AF_SMC": 43,
    "AF_XDP": 44,
    "AF_MCTP": 45,
}
SOCKET_TYPES = {
    "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2,
    "SOCK_RAW": 3,
    "SOCK_RDM": 4,
    "SOCK_SEQPACKET": 5,
    "SOCK_DCCP": 6,
    "SOCK_PACKET": 10,
}
SOCKET_TYPE_FLAGS = {"SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000}
SOCKET_TYPE_MASK = 0xF

PERSONALITIES = {
    "PER_LINUX": 0x0,
    "PER_LINUX32": 0x8,
    "UNAME26": 0x20000,
    "PER_LINUX32|UNAME26": 0x20008,
    "PERSONALITY_QUERY": 0xFFFFFFFF,
}
PROTECTIONS = {"PROT_READ": 0x1, "PROT_WRITE": 0x2, "PROT_EXEC": 0x4}
PRCTL_OPTIONS = {
    "PR_SET_PDEATHSIG": 1,
    "PR_GET_PDEATHSIG": 2,
    "PR_GET_DUMPABLE": 3,
    "PR_SET_DUMPABLE": 4,
    "PR_GET_KEEPCAPS": 7,
    "PR_SET_KEEPCAPS": 8,
    "PR_SET_NAME": 15,
    "PR_GET_NAME": 16,
    "PR_GET_SECCOMP": 21,
    "PR_SET_SECCOMP": 22,
    "PR_CAPBSET_READ": 23,
    "PR_CAPBSET_DROP": 24,
    "PR_SET_SECUREBITS": 28,
    "PR_SET_TIMERSLACK": 29,
    "PR_SET_CHILD_SUBREAPER": 36,
    "PR_SET_NO_NEW_PRIVS": 38,
    "PR_GET_NO_NEW_PRIVS": 39,
    "PR_CAP_AMBIENT": 47,
    "PR_SET_VMA": 0x53564D41,
}
IOCTL_REQUESTS = {
    "TCGETS": 0x5401,
    "TCSETS": 0x5402,
    "TIOCSCTTY": 0x540E,
    "TIOCGPGRP": 0x540F,
    "TIOCSTI": 0x5412,
    "TIOCGWINSZ": 0x5413,
    "TIOCSWINSZ": 0x5414,
    "FIONREAD": 0x541B,
    "TIOCLINUX": 0x541C,
    "FIONBIO": 0x5421,
    "FIONCLEX": 0x5450,
    "FIOCLEX": 0x5451,
    "FIOASYNC": 0x5452,
}
FCNTL_COMMANDS = {
    "F_DUPFD": 0,
    "F_GETFD": 1,
    "F_SETFD": 2,
    "F_GETFL": 3,
    "F_SETFL": 4,
    "F_GETLK": 5,
    "F_SETLK": 6,
    "F_SETLKW": 7,
    "F_SETOWN": 8,
    "F_GETOWN": 9,
    "F_SETLEASE": 1024,
    "F_GETLEASE": 1025,
    "F_DUPFD_CLOEXEC": 1030,
    "F_ADD_SEALS": 1033,
    "F_GET_SEALS": 1034,
}


@dataclass(frozen=True)
class ArgumentKind:
    """What one argument of one syscall means: its name and how its values read."""

    label: str
    names: dict[str, int]
    flags: bool = False  # a bit set (values read as A|B) rather than one of several values
    type_mask: int = 0  # for socket types: the low bits are one value, the rest flags


ARGUMENT_KINDS: dict[tuple[str, int], ArgumentKind] = {
    ("clone", 0): ArgumentKind("flags", CLONE_FLAGS, flags=True),
    ("unshare", 0): ArgumentKind("flags", NAMESPACE_FLAGS, flags=True),
    ("setns", 1): ArgumentKind("nstype", NAMESPACE_FLAGS, flags=True),
    ("socket", 0): ArgumentKind("domain", ADDRESS_FAMILIES),
    ("socket", 1): ArgumentKind("type", SOCKET_TYPES | SOCKET_TYPE_FLAGS, type_mask=SOCKET_TYPE_MASK),
    ("socketpair", 0): ArgumentKind("domain", ADDRESS_FAMILIES),
    ("socketpair", 1): ArgumentKind("type", SOCKET_TYPES | SOCKET_TYPE_FLAGS, type_mask=SOCKET_TYPE_MASK),
    ("personality", 0): ArgumentKind("persona", PERSONALITIES),
    ("mmap", 2): ArgumentKind("prot", PROTECTIONS, flags=True),
    ("mprotect", 2): ArgumentKind("prot", PROTECTIONS, flags=True),
    ("pkey_mprotect", 2): ArgumentKind("prot", PROTECTIONS, flags=True),
    ("prctl", 0): ArgumentKind("option", PRCTL_OPTIONS),
    ("ioctl", 1): ArgumentKind("request", IOCTL_REQUESTS),
    ("fcntl", 1): ArgumentKind("cmd", FCNTL_COMMANDS),
}

COMPARISONS = {
    "SCMP_CMP_EQ": "==",
    "SCMP_CMP_NE": "!=",
    "SCMP_CMP_LT": "<",
    "SCMP_CMP_LE": "<=",
    "SCMP_CMP_GT": ">",
    "SCMP_CMP_GE": ">=",
}


def argument_kind(syscall: str, index: int) -> ArgumentKind | None:
    return ARGUMENT_KINDS.get((syscall, index))


def flag_names(value: int, names: dict[str, int]) -> list[str]:
    """The named bits in `value`, then whatever is left as hex."""
    found, rest = [], value
    for name, bit in sorted(names.items(), key=lambda item: item[1]):
        if bit and (value & bit) == bit and rest & bit:
            found.append(name)
            rest &= ~bit
    if rest:
        found.append(hex(rest))
    return found


def socket_type_names(value: int, kind: ArgumentKind) -> list[str]:
    base = value & kind.type_mask
    base_name = next((name for name, v in SOCKET_TYPES.items() if v == base), str(base))
    return [base_name] + flag_names(value & ~kind.type_mask, SOCKET_TYPE_FLAGS)


def value_name(value: int, kind: ArgumentKind | None) -> str:
    """`AF_INET (2)`, `CLONE_NEWNS|CLONE_NEWUTS (0x4020000)`, or the plain number."""
    if kind is None:
        return str(value) if value < 4096 else hex(value)
    if kind.flags:
        return f"{'|'.join(flag_names(value, kind.names)) or '0'} ({hex(value)})"
    if kind.type_mask:
        return f"{'|'.join(socket_type_names(value, kind))} ({value})"
    name = next((name for name, v in kind.names.items() if v == value), None)
    shown = str(value) if value < 4096 else hex(value)
    return f"{name} ({shown})" if name else shown


@dataclass(frozen=True)
class ConditionText:
    """One condition of a rule: its raw OCI fields and how it reads."""

    index: int
    op: str
    value: int
    value_two: int
    argument: str  # "arg 0 (flags)"
    reads: str  # "none of CLONE_NEWNS, ... set"

    @property
    def raw(self) -> str:
        extra = f" {self.value_two:#x}" if self.op == "SCMP_CMP_MASKED_EQ" else ""
        return f"{self.op} {self.value:#x}{extra}"


def masked_reading(label: str, mask: int, datum: int, kind: ArgumentKind | None) -> str:
    """SCMP_CMP_MASKED_EQ: OCI `value` is the mask, `valueTwo` the value the masked bits equal."""
    if kind is not None and kind.flags:
        bits = flag_names(mask, kind.names)
        if datum == 0:
            return f"{label}: none of {', '.join(bits)} set"
        if datum == mask:
            return f"{label}: all of {', '.join(bits)} set"
        return f"{label} & ({'|'.join(bits)}) == {value_name(datum, kind)}"
    return f"{label} & {mask:#x} == {value_name(datum, kind)}"


def describe_condition(syscall: str, condition: dict) -> ConditionText:
    index = int(condition.get("index", 0))
    op = str(condition.get("op", ""))
    value, value_two = int(condition.get("value", 0)), int(condition.get("valueTwo", 0))
    kind = argument_kind(syscall, index)
    label = f"arg {index} ({kind.label})" if kind else f"arg {index}"
    if op == "SCMP_CMP_MASKED_EQ":
        reads = masked_reading(label, value, value_two, kind)
    elif op in COMPARISONS:
        reads = f"{label} {COMPARISONS[op]} {value_name(value, kind)}"
    else:
        reads = f"{label} {op} {value:#x} (a comparison this report does not know)"
    return ConditionText(index, op, value, value_two, label, reads)


@dataclass(frozen=True)
class ArgumentRule:
    """A rule of the profile that looks at arguments: every condition must hold."""

    names: tuple[str, ...]
    action: str
    conditions: tuple[ConditionText, ...]
    comment: str | None = None
    applies: str | None = None  # Docker-style includes/excludes, in words

    def reads(self) -> str:
        return " and ".join(c.reads for c in self.conditions)


def argument_rules(seccomp: dict) -> list[ArgumentRule]:
    """Every rule with `args`, each condition described for the rule's first syscall name (a rule
    that names several syscalls conditions the same argument position of each)."""
    rules = []
    for rule in seccomp.get("syscalls") or []:
        conditions = [c for c in rule.get("args") or [] if isinstance(c, dict)]
        names = tuple(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not conditions or not names:
            continue
        described = tuple(describe_condition(names[0], c) for c in conditions)
        comment = rule.get("comment") if isinstance(rule.get("comment"), str) else None
        rules.append(ArgumentRule(names, str(rule.get("action", "")), described, comment, applies_when(rule)))
    return rules


def applies_when(rule: dict) -> str | None:
    """Docker-style `includes` / `excludes` (capabilities, architectures, kernel) in words."""
    parts = []
    for key, word in (("includes", "only"), ("excludes", "except")):
        selector = rule.get(key) or {}
        if not isinstance(selector, dict):
            continue
        if selector.get("caps"):
            parts.append(f"{word} with {', '.join(map(str, selector['caps']))}")
        if selector.get("arches"):
            parts.append(f"{word} on {', '.join(map(str, selector['arches']))}")
        if selector.get("minKernel"):
            parts.append(f"{word} from kernel {selector['minKernel']}")
    return "; ".join(parts) or None
