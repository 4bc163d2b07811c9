"""Deterministic names of everything the operator creates.

Names are derived only from the resource's name and the spec (never from time or randomness), so
a restarted operator finds the objects its predecessor created and a removed schedule maps to
exactly one CronJob to delete. Kubernetes limits CronJob names to 52 characters (the Jobs it
spawns append an 11-character suffix); a name that would be longer keeps a readable prefix and
ends in a short hash of the full name, so two long names never collide.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = [
    "CRONJOB_NAME_LIMIT",
    "LEASE_NAME",
    "backup_cronjob_name",
    "bounded_name",
    "vacuum_cronjob_name",
]

# The Lease two operator processes compete for; only its holder reconciles.
LEASE_NAME: Final = "lokifi-storage-operator"

CRONJOB_NAME_LIMIT: Final = 52
_HASH_LEN = 8
_INVALID = re.compile(r"[^a-z0-9-]+")


def _dns_label_part(text: str) -> str:
    """Lower-case, anything outside [a-z0-9-] becomes '-': schedule names may contain '_'."""
    return _INVALID.sub("-", text.lower()).strip("-")


def bounded_name(full: str, limit: int) -> str:
    """`full` when it fits; otherwise a prefix, '-', and 8 hex of sha256(full)."""
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LEN]
    prefix = full[: limit - _HASH_LEN - 1].rstrip("-")
    return f"{prefix}-{digest}"


def backup_cronjob_name(resource: str, schedule: str) -> str:
    """`<resource>-backup-<schedule>`, e.g. lokifi-prod-backup-daily."""
    return bounded_name(f"{resource}-backup-{_dns_label_part(schedule)}", CRONJOB_NAME_LIMIT)


def vacuum_cronjob_name(resource: str) -> str:
    """`<resource>-vacuum`."""
    return bounded_name(f"{resource}-vacuum", CRONJOB_NAME_LIMIT)


def partitions_cronjob_name(resource: str, work: str) -> str:
    """`<resource>-partitions-<work>`, e.g. lokifi-prod-partitions-export."""
    return bounded_name(f"{resource}-partitions-{work}", CRONJOB_NAME_LIMIT)
