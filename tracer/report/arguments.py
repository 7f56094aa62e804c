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

from tracer import argnames


def by_name(values: dict[int, str]) -> dict[str, int]:
    """One of argnames' tables (value -> name) the other way round."""
    return {name: value for value, name in values.items()}


CLONE_FLAGS = by_name(argnames.CLONE_FLAGS)
ADDRESS_FAMILIES = by_name(argnames.ADDRESS_FAMILIES)
SOCKET_TYPES = by_name(argnames.SOCKET_TYPES)
SOCKET_TYPE_FLAGS = by_name(argnames.SOCKET_TYPE_FLAGS)
PRCTL_OPTIONS = by_name(argnames.PRCTL_OPTIONS)
IOCTL_REQUESTS = by_name(argnames.IOCTL_REQUESTS)

# unshare(2) also takes the namespace flags (with CLONE_NEWTIME, which in clone(2) is part of the
# exit signal) and un-shares the file table, the file-system attributes and System V semaphores.
NAMESPACE_FLAGS = by_name(argnames.NAMESPACE_FLAGS) | {
    name: CLONE_FLAGS[name] for name in ("CLONE_FILES", "CLONE_FS", "CLONE_SYSVSEM")
}

SOCKET_TYPE_MASK = 0xF

PERSONALITIES = {
    "PER_LINUX": 0x0,
    "PER_LINUX32": 0x8,
    "UNAME26": 0x20000,
    "PER_LINUX32|UNAME26": 0x20008,
    "PERSONALITY_QUERY": 0xFFFFFFFF,
}
PROTECTIONS = {"PROT_READ": 0x1, "PROT_WRITE": 0x2, "PROT_EXEC": 0x4}
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
