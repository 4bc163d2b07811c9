"""RFC 3339 times as the resource, its Events, Leases and backup manifests carry them.

One formatter, because every reader (kubectl, Argo CD, Prometheus, our own status parser) expects
UTC with a `Z`, and a time written without converting to UTC first carries the local clock's
hours under a `Z` that claims otherwise: off by the zone's offset, silently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["parse_rfc3339", "rfc3339"]

Precision = Literal["seconds", "milliseconds", "microseconds"]


def rfc3339(moment: datetime, precision: Precision = "seconds") -> str:
    """`2026-01-31T12:00:00Z` (conditions, status), `.123Z` (backup manifests), `.123456Z`
    (Kubernetes MicroTime: Lease renewals, Event times)."""
    return moment.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """The instant of an RFC 3339 time as written above (`Z` or an offset); ValueError when
    `text` is not one."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
