"""SQLite's timestamps (ISO text with or without a zone, Unix seconds or milliseconds) into the
COPY fields of timestamptz, timestamp and date. Pure.

Its own module because the same reading of a value as an instant serves two callers: the
converters here and the partition planner's bucketing of rows by time (domain/migrate_plan.py).
The decisions (zoneless is UTC, milliseconds from 1e11 on) are listed in domain/sqlite_values.py.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

from lokifi_storage.domain.copy_fields import NUMBER_TEXT, Rejected, kind_name, text_of

__all__ = ["timestamp_instant", "to_date", "to_timestamp", "to_timestamptz"]

_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MS_FROM: Final = 100_000_000_000  # |n| >= 1e11 in a timestamp column: milliseconds


def _from_unix(number: float) -> dt.datetime:
    try:
        if abs(number) >= _MS_FROM:
            if isinstance(number, int):
                return _EPOCH + dt.timedelta(milliseconds=number)
            return _EPOCH + dt.timedelta(microseconds=round(number * 1000))
        if isinstance(number, int):
            return _EPOCH + dt.timedelta(seconds=number)
        return _EPOCH + dt.timedelta(microseconds=round(number * 1_000_000))
    except (OverflowError, ValueError):
        raise Rejected(f"{number!r} is out of range as a Unix time") from None


def timestamp_instant(value: Any) -> dt.datetime:
    """The UTC instant of a timestamp value (ISO text, Unix seconds or milliseconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise Rejected(f"{value!r} is not a time")
        return _from_unix(value)
    if not isinstance(value, bytearray | bytes):
        raise Rejected(f"cannot read a {kind_name(value)} as a timestamp")
    text = text_of(value).strip()
    if NUMBER_TEXT.fullmatch(text):
        number = float(text) if any(c in text for c in ".eE") else int(text)
        return _from_unix(number)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(f"{text[:40]!r} is not an ISO 8601 time or a Unix time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    try:
        return parsed.astimezone(_UTC)
    except OverflowError:
        raise Rejected(f"{text[:40]!r} is out of range") from None


def _stamp(t: dt.datetime) -> str:
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}"
    )


def _naive_iso(value: Any) -> bytes | None:
    """`YYYY-MM-DD HH:MM:SS` (or with T), the app's most common spelling, validated and laid
    out without building a datetime's text; None for anything else."""
    if (
        type(value) is bytearray
        and len(value) == 19
        and value[10] in (32, 84)
        and value[4] == value[7] == 45
        and value[13] == value[16] == 58  # not "YYYY-MM-DD HH:MM+05" nor a week date
    ):
        try:
            dt.datetime.fromisoformat(value.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None
        return bytes(value[:10]) + b" " + bytes(value[11:]) + b".000000"
    return None


def to_timestamptz(value: Any) -> bytes:
    fast = _naive_iso(value)
    if fast is not None:
        return fast + b"+00"
    return (_stamp(timestamp_instant(value)) + "+00").encode()


def to_timestamp(value: Any) -> bytes:
    fast = _naive_iso(value)
    if fast is not None:
        return fast
    return _stamp(timestamp_instant(value)).encode()


def to_date(value: Any) -> bytes:
    t = timestamp_instant(value)
    if (t.hour, t.minute, t.second, t.microsecond) != (0, 0, 0, 0):
        raise Rejected(f"{t.isoformat()} has a time of day; a date column would drop it")
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}".encode()
