"""Pod Security levels and policy versions, parsed as upstream's api.ParseLevel and
api.ParseVersion do."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracer.errors import InputError

LEVELS = ("privileged", "baseline", "restricted")  # least to most strict
PRIVILEGED, BASELINE, RESTRICTED = LEVELS

_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")  # upstream api.ParseVersion


@dataclass(frozen=True)
class Version:
    """A policy version: `v1.N`, or `latest` (minor is None)."""

    minor: int | None

    @property
    def latest(self) -> bool:
        return self.minor is None

    def __str__(self) -> str:
        return "latest" if self.minor is None else f"v1.{self.minor}"


def parse_version(value: str | Version) -> Version:
    """Parse `latest` or `v1.N` exactly as upstream does; anything else is an InputError."""
    if isinstance(value, Version):
        return value
    if value == "latest":
        return Version(None)
    match = _VERSION_RE.match(value or "")
    if not match:
        raise InputError(None, f'invalid policy version {value!r}: must be "latest" or "v1.x"')
    return Version(int(match.group(1)))


def parse_level(value: str) -> str:
    if value not in LEVELS:
        raise InputError(None, f"invalid level {value!r}: must be one of {', '.join(LEVELS)}")
    return value
