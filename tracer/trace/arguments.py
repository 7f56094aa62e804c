"""Recorded syscall arguments: the values that decide whether a call is dangerous.

The recorder aggregates, in the kernel, the arguments of ten syscalls (namespace creation,
socket families, personality, prctl options, ioctl requests and connect destinations) per
phase and result. A trace holds them in its `arguments` section (docs/trace-format.md):

    {"recorded": ["clone", ...],
     "rows": [{"syscall": "socket", "phase": "startup", "family": 2, "type": 1, "protocol": 0,
               "errno": 0, "count": 3}, ...]}

`recorded` names the syscalls whose arguments the recorder watched: a syscall in it with no
row was never called with any argument; a syscall not in it (every syscall of a version 1
trace) has unknown arguments.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tracer.errors import InputError

# The recorded values of each syscall, in order. Register values are kept whole (64 bits, as
# seccomp compares them); socket types without SOCK_NONBLOCK/SOCK_CLOEXEC; clone3's flags come
# from the clone_args the caller passed (None when unreadable); ioctl's device is what its
# descriptor named (None when the process was gone before the loader looked).
ARGUMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "clone": ("flags",),
    "clone3": ("flags",),
    "unshare": ("flags",),
    "setns": ("nstype",),
    "socket": ("family", "type", "protocol"),
    "socketpair": ("family", "type", "protocol"),
    "personality": ("persona",),
    "prctl": ("option",),
    "ioctl": ("request", "device"),
    "connect": ("family", "address", "port"),
}
RECORDED_SYSCALLS = tuple(ARGUMENT_FIELDS)
# Fields that are strings (or null) rather than integers.
TEXT_FIELDS = {("ioctl", "device"), ("connect", "address")}
NULLABLE_FIELDS = {("clone3", "flags"), ("ioctl", "device"), ("connect", "address"), ("connect", "port")}

# Which syscall argument (index) each recorded value is, for evaluating seccomp rules on a
# row. Values that are not arguments (a device, an address behind a pointer) have none.
ARGUMENT_INDEX: dict[str, dict[str, int]] = {
    "clone": {"flags": 0},
    "unshare": {"flags": 0},
    "setns": {"nstype": 1},
    "socket": {"family": 0, "type": 1, "protocol": 2},
    "socketpair": {"family": 0, "type": 1, "protocol": 2},
    "personality": {"persona": 0},
    "prctl": {"option": 0},
    "ioctl": {"request": 1},
}


@dataclass(frozen=True)
class ArgumentRow:
    syscall: str
    phase: str
    values: tuple  # in ARGUMENT_FIELDS[syscall] order
    errno: int
    count: int

    def __getitem__(self, field: str):
        return self.values[ARGUMENT_FIELDS[self.syscall].index(field)]

    @property
    def key(self) -> tuple:
        return (self.syscall, self.phase, self.values, self.errno)

    def arguments(self) -> dict[int, int]:
        """{argument index: register value} for what the row knows of the call's arguments."""
        return {
            index: self[field]
            for field, index in ARGUMENT_INDEX.get(self.syscall, {}).items()
            if self[field] is not None
        }

    def to_json(self) -> dict:
        return {
            "syscall": self.syscall,
            "phase": self.phase,
            **dict(zip(ARGUMENT_FIELDS[self.syscall], self.values)),
            "errno": self.errno,
            "count": self.count,
        }


@dataclass
class Arguments:
    recorded: tuple[str, ...]
    rows: list[ArgumentRow]

    def knows(self, syscall: str) -> bool:
        return syscall in self.recorded

    def of(self, syscall: str, phases) -> list[ArgumentRow]:
        return [row for row in self.rows if row.syscall == syscall and row.phase in phases]

    def in_phases(self, phases) -> "Arguments":
        return Arguments(self.recorded, [row for row in self.rows if row.phase in phases])


def summed(rows) -> list[ArgumentRow]:
    """Rows with the same syscall, phase, values and errno added up, in a stable order."""
    counts: Counter = Counter()
    for row in rows:
        counts[row.key] += row.count
    return [
        ArgumentRow(syscall, phase, values, errno, count)
        for (syscall, phase, values, errno), count in sorted(counts.items(), key=_sort_key)
    ]


def _sort_key(item) -> tuple:
    (syscall, phase, values, errno), _count = item
    return (syscall, phase, tuple((v is None, str(v) if isinstance(v, str) else v or 0) for v in values), errno)


def merge_arguments(parts: list[Arguments | None]) -> Arguments:
    """The union of several recordings. A syscall counts as recorded only when every part
    recorded it: otherwise one run's unknown arguments would pass for none."""
    known = [part for part in parts if part is not None]
    if len(known) < len(parts) or not known:
        return Arguments((), [])
    recorded = [name for name in RECORDED_SYSCALLS if all(part.knows(name) for part in known)]
    return Arguments(tuple(recorded), summed(row for part in known for row in part.rows if row.syscall in recorded))


# ---------------------------------------------------------------- the trace's section


def arguments_to_document(arguments: Arguments) -> dict:
    return {"recorded": list(arguments.recorded), "rows": [row.to_json() for row in arguments.rows]}


def parse_arguments(source: str, doc, phases: tuple[str, ...]) -> Arguments:
    """The `arguments` section of a version 2 trace; any problem is an InputError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("recorded"), list) or not isinstance(doc.get("rows"), list):
        raise InputError(source, "arguments must be an object with lists 'recorded' and 'rows'")
    unknown = [name for name in doc["recorded"] if name not in ARGUMENT_FIELDS]
    if unknown:
        raise InputError(source, f"arguments.recorded names {unknown[0]!r}, whose arguments are never recorded")
    rows = [_parse_row(source, index, row, phases, doc["recorded"]) for index, row in enumerate(doc["rows"])]
    return Arguments(tuple(doc["recorded"]), rows)


def _parse_row(source: str, index: int, row, phases, recorded) -> ArgumentRow:
    where = f"arguments row {index}"
    if not isinstance(row, dict) or row.get("syscall") not in recorded:
        raise InputError(source, f"{where}: 'syscall' must be one of arguments.recorded")
    syscall = row["syscall"]
    if row.get("phase") not in phases:
        raise InputError(source, f"{where}: unknown phase {row.get('phase')!r}")
    for key in ("errno", "count"):
        if not _is_count(row.get(key)):
            raise InputError(source, f"{where}: {key!r} must be a non-negative integer")
    values = tuple(_parse_value(source, where, syscall, name, row.get(name, ...)) for name in ARGUMENT_FIELDS[syscall])
    return ArgumentRow(syscall, row["phase"], values, row["errno"], row["count"])


def _parse_value(source, where, syscall, name, value):
    if value is ...:
        raise InputError(source, f"{where}: {syscall} row has no {name!r}")
    if value is None and (syscall, name) in NULLABLE_FIELDS:
        return None
    if (syscall, name) in TEXT_FIELDS:
        if isinstance(value, str):
            return value
        raise InputError(source, f"{where}: {name!r} must be a string")
    if _is_count(value) and value < 2**64:
        return value
    raise InputError(source, f"{where}: {name!r} must be an integer from 0 to 2^64-1")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
