"""The overview's chart, pure: deliveries and failures per minute over 24 hours, as the points
of two SVG paths. Data in, geometry out; the template draws it (no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTES = 24 * 60
WIDTH = 720  # SVG units: two minutes per unit
HEIGHT = 120


@dataclass(frozen=True, slots=True)
class Chart:
    delivered_path: str
    failed_path: str
    peak: int
    """The tallest minute (deliveries or failures): the y axis' top."""
    delivered: int
    failed: int
    start: datetime
    end: datetime
    hours: tuple[tuple[float, str], ...]
    """x and label of every sixth hour, for the axis."""


def minute_key(moment: datetime) -> str:
    """The key :meth:`Ledger.per_minute` uses: the UTC minute as ``YYYY-MM-DD HH:MM``."""
    return moment.strftime("%Y-%m-%d %H:%M")


def chart(counts: dict[str, tuple[int, int]], now: datetime) -> Chart:
    """The last 24 hours up to ``now`` (UTC), from per-minute (delivered, failed) counts."""
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=MINUTES - 1)
    series = [counts.get(minute_key(start + timedelta(minutes=i)), (0, 0)) for i in range(MINUTES)]
    peak = max((max(sent, failed) for sent, failed in series), default=0)
    scale = HEIGHT / peak if peak else 0.0
    step = WIDTH / (MINUTES - 1)

    def path(index: int) -> str:
        # One point per minute; a run of empty minutes is one straight segment of the same path.
        points = []
        for i, pair in enumerate(series):
            if 0 < i < MINUTES - 1 and pair[index] == series[i - 1][index] == series[i + 1][index]:
                continue
            points.append(f"{i * step:.1f},{HEIGHT - pair[index] * scale:.1f}")
        return "M" + " L".join(points)

    hours = []
    for i in range(MINUTES):
        moment = start + timedelta(minutes=i)
        if moment.minute == 0 and moment.hour % 6 == 0:
            hours.append((round(i * step, 1), moment.strftime("%H:%M")))
    return Chart(
        delivered_path=path(0),
        failed_path=path(1),
        peak=peak,
        delivered=sum(sent for sent, _ in series),
        failed=sum(failed for _, failed in series),
        start=start,
        end=end,
        hours=tuple(hours),
    )
