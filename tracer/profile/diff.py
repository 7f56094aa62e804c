"""diff: what a new profile or trace needs beyond an old one (the check for an image upgrade)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tracer.errors import InputError
from tracer.files import read_json
from tracer.profile.capabilities import capability_evidence, infer_capabilities
from tracer.profile.directory import load_profile_dir
from tracer.profile.seccomp import allowed_names, recorded_syscalls
from tracer.profile.validate import check_seccomp
from tracer.trace import MAX_TRACE_BYTES, load_trace


@dataclass
class Needs:
    """What one side grants or used: syscall names and capabilities."""

    source: str
    syscalls: set[str]
    capabilities: set[str]


def needs_of(path: Path) -> Needs:
    """A profile directory, a seccomp.json, or a trace; each checked as its loader checks it."""
    if path.is_dir():
        profile = load_profile_dir(path)
        return Needs(str(path), allowed_names(profile.seccomp), set(profile.capabilities["add"]))
    if not path.exists():
        raise InputError(path, "no such file or profile directory")
    head = read_json(path, "a profile or trace", max_bytes=MAX_TRACE_BYTES)
    if isinstance(head, dict) and "defaultAction" in head and "format" not in head:
        check_seccomp(path, head)
        return Needs(str(path), allowed_names(head), set())
    return _needs_of_trace(path)


def _needs_of_trace(path: Path) -> Needs:
    trace = load_trace(path)
    syscalls = recorded_syscalls(trace)
    caps = infer_capabilities(capability_evidence(trace))["add"]
    return Needs(str(path), set(syscalls.allowed), set(caps))


def changes(old: set[str], new: set[str]) -> tuple[list[str], list[str]]:
    """(added, removed), each sorted."""
    return sorted(new - old), sorted(old - new)


@dataclass
class Diff:
    old: Needs
    new: Needs

    def __post_init__(self) -> None:
        self.added_syscalls, self.removed_syscalls = changes(self.old.syscalls, self.new.syscalls)
        self.added_capabilities, self.removed_capabilities = changes(self.old.capabilities, self.new.capabilities)

    @property
    def needs_more(self) -> bool:
        return bool(self.added_syscalls or self.added_capabilities)

    def to_json(self) -> dict:
        return {"old": self.old.source, "new": self.new.source, "needs_more": self.needs_more,
                "syscalls": {"added": self.added_syscalls, "removed": self.removed_syscalls},
                "capabilities": {"added": self.added_capabilities, "removed": self.removed_capabilities}}

    def to_text(self) -> str:
        lines = [f"--- {self.old.source}", f"+++ {self.new.source}"]
        lines += [f"+ syscall {n}" for n in self.added_syscalls] + [f"- syscall {n}" for n in self.removed_syscalls]
        lines += [f"+ capability {c}" for c in self.added_capabilities] + [f"- capability {c}" for c in self.removed_capabilities]
        verdict = "NEW needs more than OLD grants" if self.needs_more else "NEW needs nothing beyond OLD"
        return "\n".join(lines + [verdict])


def diff(old: Path, new: Path) -> Diff:
    return Diff(needs_of(old), needs_of(new))
