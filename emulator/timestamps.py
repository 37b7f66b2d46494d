"""Timestamps as Kubernetes writes them on the wire: RFC 3339 in UTC, to the second ("2026-11-27T02:58:02Z")."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
_current: tuple[int, str] = (0, "")


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(RFC3339)


def now_rfc3339() -> str:
    """Now; formatted once per second, since every write stamps at least one time."""
    global _current
    second = int(time.time())
    if _current[0] != second:
        _current = (second, rfc3339(second))
    return _current[1]


def parse_rfc3339(value: Any) -> datetime | None:
    """A timestamp the API wrote (fractions allowed); None when absent or unreadable. Without an
    offset it is UTC, as the API means it (aware and naive datetimes cannot be compared)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # accepts "Z" since Python 3.11
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
