"""How big each part of a streamed multipart upload is, when the total size is unknown.

S3 allows at most 10,000 parts, each (but the last) at least 5 MiB. A dump streamed from pg_dump
has no size up front, so parts start small (memory use stays low for small databases) and double
every 1,000 parts, capped at S3's 5 GiB part limit: with the default 16 MiB start the first
~15 GiB go in 16 MiB parts, a 1 TiB dump ends in 512 MiB parts, and the ceiling is far beyond.
"""

from __future__ import annotations

__all__ = ["MAX_PARTS", "MAX_PART_SIZE", "MIN_PART_SIZE", "max_total", "part_size"]

MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
_DOUBLE_EVERY = 1_000


def part_size(number: int, base: int) -> int:
    """The size of part `number` (1-based) for a starting size of `base` bytes."""
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"part number {number} is outside 1..{MAX_PARTS}")
    grown = max(base, MIN_PART_SIZE) << ((number - 1) // _DOUBLE_EVERY)
    return min(grown, MAX_PART_SIZE)


def max_total(base: int) -> int:
    """The largest object the schedule of part sizes can hold."""
    return sum(part_size(n, base) for n in range(1, MAX_PARTS + 1))
