"""diff: what a new profile or trace needs beyond an old one (the check for an image upgrade).

OLD is what is granted: a profile directory, a seccomp.json, or a trace (then the profile
`generate` would write from it). Where both sides say which image they were recorded from (a
pod's trace, or a profile's recording.json), a change of image is shown too. NEW is what is needed: a trace (every recorded syscall, and
every recorded argument value of the conditioned syscalls, must be allowed by OLD) or a
profile (nothing it allows may be refused by OLD: a condition that widened counts, e.g.
socket AF_NETLINK where OLD allowed AF_INET only).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path

from tracer.errors import InputError
from tracer.files import read_json
from tracer.profile.against import compare, deciding_rule, describe_row, kernel_values
from tracer.profile.directory import load_profile_dir
from tracer.profile.filter import Filter, filter_from_oci
from tracer.profile.generate import ProfileOptions, plan_profile
from tracer.profile.merge import image_of, recordings_in
from tracer.profile.validate import check_seccomp
from tracer.trace.format import MAX_TRACE_BYTES, PROFILE_PHASES, Trace, load_trace


@dataclass
class Needs:
    """One side: what it grants (a filter) and, for a trace, what it recorded."""

    source: str
    arch: str | None
    grants: Filter
    capabilities: set[str]
    trace: Trace | None = None
    needed_names: set[str] = field(default_factory=set)
    fallback_names: set[str] = field(default_factory=set)  # recorded, answered ENOSYS by design
    images: set[str] = field(default_factory=set)  # the images recorded (digest references where known)

    @property
    def syscalls(self) -> set[str]:
        return self.needed_names if self.trace is not None else allowed_somehow(self.grants)


def allowed_somehow(f: Filter) -> set[str]:
    return {name for name in f.names() if f.allows_anything(name)}


def needs_of(path: Path) -> Needs:
    """A profile directory, a seccomp.json, or a trace; each checked as its loader checks it."""
    if path.is_dir():
        profile = load_profile_dir(path)
        targets = [(trace or {}).get("target") for trace in (profile.recording or {}).get("traces") or []]
        return Needs(
            str(path),
            _arch(profile.seccomp),
            filter_from_oci(profile.seccomp, str(path / "seccomp.json")),
            set(profile.capabilities_add),
            images=images_of(targets),
        )
    if not path.exists():
        raise InputError(path, "no such file or profile directory")
    head = read_json(path, "a profile or trace", max_bytes=MAX_TRACE_BYTES)
    if isinstance(head, dict) and "defaultAction" in head and "format" not in head:
        check_seccomp(path, head)
        return Needs(str(path), _arch(head), filter_from_oci(head, str(path)), set())
    return _needs_of_trace(path)


def _arch(seccomp: dict) -> str | None:
    return (seccomp.get("architectures") or [None])[0]


def _needs_of_trace(path: Path) -> Needs:
    """What the trace recorded, granted as the profile `generate` would write from it."""
    trace = load_trace(path)
    draft = plan_profile([trace], ProfileOptions(allow_incomplete=True))
    return Needs(
        str(path),
        trace.arch,
        draft.filter,
        set(draft.capabilities["add"]),
        trace,
        set(draft.syscalls.allowed),
        draft.fallback_names,
        images_of(run.get("target") for run in recordings_in(trace)),
    )


def images_of(targets) -> set[str]:
    return {image for image in map(image_of, targets) if image}


@dataclass
class Diff:
    old: Needs
    new: Needs

    @property
    def added_syscalls(self) -> list[str]:
        refused = {name for name in self.new.syscalls if not self.old.grants.allows_anything(name)}
        return sorted(refused - self._fallbacks())

    def _fallbacks(self) -> set[str]:
        """Recorded names OLD answers ENOSYS that NEW's own profile answers ENOSYS too (clone3:
        the library falls back to clone, whose arguments are checked below)."""
        return {
            name for name in self.new.fallback_names if self.old.grants.verdict(name).returned_errno == errno.ENOSYS
        }

    @property
    def removed_syscalls(self) -> list[str]:
        return sorted(self.old.syscalls - self.new.syscalls)

    @property
    def added_arguments(self) -> list[str]:
        """Argument values NEW needs (or allows) that OLD refuses, for names OLD allows."""
        old = self.old.grants
        if self.new.trace is not None:
            rows = self.new.trace.arguments.in_phases(PROFILE_PHASES).rows if self.new.trace.arguments else []
            return [
                describe_row(row)
                for row in rows
                if old.allows_anything(row.syscall)
                and row.syscall not in self._fallbacks()
                and row.arguments()
                and deciding_rule(old, row.syscall, kernel_values(row.syscall, row)) is None
            ]
        arch = self.new.arch or self.old.arch
        if arch is None:
            return []
        comparison = compare(self.new.grants, old, arch)
        return [
            f"{w.rule} (OLD refuses e.g. {'; '.join(w.examples)})"
            for w in comparison.wider
            if w.syscall == "*" or old.allows_anything(w.syscall)
        ]

    @property
    def added_capabilities(self) -> list[str]:
        return sorted(self.new.capabilities - self.old.capabilities)

    @property
    def removed_capabilities(self) -> list[str]:
        return sorted(self.old.capabilities - self.new.capabilities)

    @property
    def image_changed(self) -> bool:
        """Both sides name their images, and they differ (an upgrade to review)."""
        return bool(self.old.images and self.new.images and self.old.images != self.new.images)

    @property
    def needs_more(self) -> bool:
        return bool(self.added_syscalls or self.added_arguments or self.added_capabilities)

    def to_json(self) -> dict:
        return {
            "old": self.old.source,
            "new": self.new.source,
            "needs_more": self.needs_more,
            "images": {"old": sorted(self.old.images), "new": sorted(self.new.images), "changed": self.image_changed},
            "syscalls": {"added": self.added_syscalls, "removed": self.removed_syscalls},
            "arguments": {"added": self.added_arguments},
            "capabilities": {"added": self.added_capabilities, "removed": self.removed_capabilities},
        }

    def to_text(self) -> str:
        lines = [f"--- {self.old.source}", f"+++ {self.new.source}"]
        if self.image_changed:
            lines.append(f"~ image {', '.join(sorted(self.old.images))} -> {', '.join(sorted(self.new.images))}")
        lines += [f"+ syscall {n}" for n in self.added_syscalls] + [f"- syscall {n}" for n in self.removed_syscalls]
        lines += [f"+ arguments: {a}" for a in self.added_arguments]
        lines += [f"+ capability {c}" for c in self.added_capabilities] + [
            f"- capability {c}" for c in self.removed_capabilities
        ]
        verdict = "NEW needs more than OLD grants" if self.needs_more else "NEW needs nothing beyond OLD"
        return "\n".join(lines + [verdict])


def diff(old: Path, new: Path) -> Diff:
    return Diff(needs_of(old), needs_of(new))
