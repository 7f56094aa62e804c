"""Audit Event times and the `--since` option."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from tracer.errors import InputError

DURATION = re.compile(r"(\d+)([smhdw])")
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_timestamp(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def event_time(event: dict) -> datetime | None:
    return parse_timestamp(event.get("stageTimestamp")) or parse_timestamp(event.get("requestReceivedTimestamp"))


def format_timestamp(stamp: datetime) -> str:
    """RFC3339 in UTC with microseconds, like the apiserver's MicroTime."""
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an RFC3339 time, or a duration back from now like 30m, 2h, 7d, 1h30m."""
    text = text.strip()
    if re.fullmatch(r"(\d+[smhdw])+", text):
        seconds = sum(int(n) * SECONDS_PER_UNIT[unit] for n, unit in DURATION.findall(text))
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    stamp = parse_timestamp(text)
    if stamp is None:
        raise InputError("--since", f"{text!r} is neither an RFC3339 time nor a duration like 30m, 2h or 7d")
    return stamp
