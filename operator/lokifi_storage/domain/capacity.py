"""Capacity arithmetic: used percent, growth per day, the projected full date, the alert.

The operator samples the database size on every reconcile but *records* a sample only when the
newest recorded one is at least `SAMPLE_SPACING` old, and keeps at most `MAX_SAMPLES` of them
(three days at the default spacing) in `status.storage.samples`. Growth per day is the slope of
a least-squares line through the recorded samples of the last `GROWTH_WINDOW`: one noisy sample
(a VACUUM FULL, a bulk load) moves it a little instead of flipping it.

Status values move with recorded samples, not with every measurement, so a reconcile that
measured a slightly different size writes no status; the live value is a metric. The alert is
the exception: crossing `alertThresholdPercent` in either direction is acted on at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from lokifi_storage.api.conditions import Reason

__all__ = [
    "GROWTH_WINDOW",
    "MAX_SAMPLES",
    "MIN_GROWTH_SPAN",
    "SAMPLE_SPACING",
    "Assessment",
    "Sample",
    "assess",
    "growth_per_day",
    "projected_full_date",
    "record_sample",
    "used_percent",
]

SAMPLE_SPACING = timedelta(hours=1)
MAX_SAMPLES = 72
GROWTH_WINDOW = timedelta(days=3)
# Below this span two samples say more about noise than about growth.
MIN_GROWTH_SPAN = timedelta(minutes=30)
_DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Sample:
    """The database size at one moment."""

    at: datetime
    bytes: int


def used_percent(used: int, capacity: int) -> float:
    """Percent of `capacity` in use, two decimals; capacity must be positive."""
    if capacity <= 0:
        raise ValueError("capacity must be positive")
    return round(used * 100.0 / capacity, 2)


def record_sample(
    samples: Sequence[Sample],
    new: Sample,
    *,
    spacing: timedelta = SAMPLE_SPACING,
    max_samples: int = MAX_SAMPLES,
) -> tuple[list[Sample], bool]:
    """Append `new` when the newest sample is at least `spacing` older; trim to `max_samples`.

    Returns the history and whether it changed. Samples from the future (a clock that jumped
    back) are dropped rather than allowed to block recording forever.
    """
    history = sorted((s for s in samples if s.at <= new.at), key=lambda s: s.at)
    changed = len(history) != len(samples)
    if not history or new.at - history[-1].at >= spacing:
        history.append(new)
        changed = True
    if len(history) > max_samples:
        history = history[-max_samples:]
        changed = True
    return history, changed


def growth_per_day(samples: Sequence[Sample], *, window: timedelta = GROWTH_WINDOW) -> float | None:
    """Bytes per day: the least-squares slope over the samples of the last `window`.

    None when fewer than two samples span at least MIN_GROWTH_SPAN: no honest estimate yet.
    """
    if not samples:
        return None
    newest = max(s.at for s in samples)
    recent = sorted((s for s in samples if newest - s.at <= window), key=lambda s: s.at)
    if len(recent) < 2 or recent[-1].at - recent[0].at < MIN_GROWTH_SPAN:
        return None
    origin = recent[0].at
    xs = [(s.at - origin).total_seconds() / _DAY_SECONDS for s in recent]
    ys = [float(s.bytes) for s in recent]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return cov / var


def projected_full_date(
    now: datetime, used: int, capacity: int, growth: float | None
) -> date | None:
    """The UTC date `used` reaches `capacity` at `growth` bytes/day; None when not growing.

    Already full is today. Dates past year 9999 (a tiny growth) are None: "not in sight".
    """
    if used >= capacity:
        return now.date()
    if growth is None or growth <= 0:
        return None
    days = (capacity - used) / growth
    try:
        return (now + timedelta(days=days)).date()
    except OverflowError:
        return None


@dataclass(frozen=True)
class Assessment:
    """What the capacity part reports: numbers for status and metrics, and the condition."""

    used_percent: float
    growth_bytes_per_day: float | None
    projected_full: date | None
    exceeded: bool
    reason: str
    message: str


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def assess(
    now: datetime,
    used: int,
    capacity: int,
    threshold_percent: float,
    samples: Sequence[Sample],
) -> Assessment:
    """Judge `used` against `capacity`: the alert fires at the threshold and clears below it."""
    percent = used_percent(used, capacity)
    growth = growth_per_day(samples)
    full = projected_full_date(now, used, capacity, growth)
    exceeded = percent >= threshold_percent
    parts = [f"{_human(used)} of {_human(capacity)} used ({percent:.1f}%)"]
    if growth is not None:
        parts.append(f"growing {_human(growth)}/day")
    if full is not None:
        parts.append(f"full around {full.isoformat()}")
    if exceeded:
        parts.append(f"at or above the alert threshold of {threshold_percent:g}%")
    return Assessment(
        used_percent=percent,
        growth_bytes_per_day=None if growth is None else round(growth, 1),
        projected_full=full,
        exceeded=exceeded,
        reason=Reason.CAPACITY_THRESHOLD_EXCEEDED if exceeded else Reason.WITHIN_CAPACITY,
        message="; ".join(parts),
    )
