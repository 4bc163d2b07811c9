"""Rounding of live gauges before they go into `.status`.

A busy stack's replica lag and Redis memory move on every pass. Carried at full precision they
would make every resync patch the status (and wake every watcher of the resource) while nothing
an admin acts on changed. Two significant digits keep what a human reads (`1.4 s`, `1.2 GiB`)
and change only when the value moves by a few percent. The replica-lag metric mirrors status, so
it has the same resolution: sub-second lag reads 0, which is below any useful alert threshold.
Health is judged on the exact lag before rounding, so `maxLagSeconds` under a second still works.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["MIB", "lag_for_status", "memory_for_status", "significant"]

MIB: Final = 1024 * 1024
DIGITS: Final = 2


def significant(value: float, digits: int = DIGITS) -> float:
    """`value` rounded to `digits` significant digits (0 stays 0)."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = math.floor(math.log10(abs(value)))
    return round(value, digits - 1 - magnitude)


def lag_for_status(seconds: float) -> float:
    """Replica lag for status: under a second is 0 (jitter of a healthy replica), else 2 digits."""
    return 0.0 if seconds < 1 else float(significant(seconds))


def memory_for_status(used_bytes: int) -> int:
    """Bytes, rounded to two significant digits of MiB (at least whole MiB)."""
    mib = used_bytes / MIB
    rounded = round(mib) if mib < 10 else significant(mib)
    return int(rounded * MIB)
