"""Parsing of ``WHEN`` (CLI) and ``harvest.since`` (config): ISO-8601 dates/times or durations back."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FORMS = "a duration back from now (90m, 36h, 7d) or an ISO-8601 date or date-time (2026-01-31)"


def parse_duration(text: str) -> timedelta | datetime:
    """A duration (``7d``) as a timedelta, or an ISO-8601 moment as an aware UTC datetime."""
    match = _DURATION.match(text)
    if match:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not {FORMS}") from None
    # A date or a naive time is read as UTC: the daemon runs in containers whose TZ is rarely set.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_when(text: str, now: datetime) -> datetime:
    """``WHEN`` as an aware UTC datetime, durations counted back from ``now``."""
    value = parse_duration(text)
    return now - value if isinstance(value, timedelta) else value


def to_epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch_ms(millis: int) -> datetime:
    """Exact: a timedelta of whole milliseconds (a float of seconds can land a microsecond short,
    which a millisecond-precision format then truncates)."""
    return _EPOCH + timedelta(milliseconds=millis)


def iso_utc(moment: datetime | None, timespec: str = "auto") -> str | None:
    """ISO-8601 in UTC with a ``Z``; ``timespec`` as ``datetime.isoformat`` takes it (``seconds``
    for people: no microseconds)."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite gives naive datetimes back; we only ever store UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def age(moment: datetime | None, now: datetime) -> str:
    """``45s``, ``12m``, ``3h``, ``9d``: how long ago, in one unit ("" for no moment)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # as iso_utc: a naive time is UTC
        moment = moment.replace(tzinfo=UTC)
    seconds = max(int((now - moment).total_seconds()), 0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def retry_after_seconds(value: str | None, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delta-seconds or an HTTP date, from
    ``now``, epoch seconds), at most ``cap``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, cap))
