"""When to look at a resource again.

A resource that is Ready is re-observed every resync period, to repair drift and keep
premake/archival on schedule. One that is not Ready is retried sooner, with exponential backoff
from a few seconds up to the resync period, so a Secret created a moment after the resource is
picked up quickly while a server that stays down is not hammered. An invalid spec is not retried
at all: only a new generation (a spec change) can fix it, and that arrives as a watch event.
A stalled one (every failing part needs a human: a key that lacks a partition column, a setting
another resource owns) is not retried with backoff either, which would only repeat the same
refusal: it is looked at again on the resync period, which sees a table or a claim that changed,
and at once on a spec change.
The backoff lives in the operator's memory, not in the object, so retrying writes nothing.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = ["Outcome", "next_delay"]

FIRST_RETRY_SECONDS: Final = 2.0
MAX_RETRY_SECONDS: Final = 300.0


class Outcome(Enum):
    """How a reconcile ended, as far as scheduling the next one is concerned."""

    READY = "ready"
    NOT_READY = "not-ready"
    STALLED = "stalled"
    INVALID = "invalid"


def next_delay(
    outcome: Outcome,
    failures_in_a_row: int,
    resync_seconds: float,
    first_retry_seconds: float = FIRST_RETRY_SECONDS,
) -> float | None:
    """Seconds until the next reconcile; None means "only on the next spec change".

    `failures_in_a_row` counts the not-Ready outcomes before this one (0 for the first).
    """
    if outcome is Outcome.INVALID:
        return None
    if outcome in (Outcome.READY, Outcome.STALLED):
        return resync_seconds
    cap = min(MAX_RETRY_SECONDS, resync_seconds)
    return float(min(cap, first_retry_seconds * 2 ** min(failures_in_a_row, 16)))
