"""Whose clock decides that a partition is old enough to drop: the database server's.

A partition's age is measured against the server's `now()`, never the pod's clock: a node with
a fast clock would otherwise export and drop live data. When the two clocks differ by more than
MAX_CLOCK_SKEW, something is wrong with time on one side, and destructive work waits: the plan
keeps everything that adds (partitions ahead, indexes, archive moves) and loses every drop and
export, and PartitionsReady says why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.partitions.actions import DropPartition, ExportPartition
from lokifi_storage.domain.partitions.index_plan import Problem
from lokifi_storage.domain.partitions.plan import TablePlan

__all__ = ["MAX_CLOCK_SKEW", "clock_skew", "hold_retention"]

MAX_CLOCK_SKEW: Final = dt.timedelta(minutes=5)


def clock_skew(pod_now: dt.datetime, server_now: dt.datetime) -> str | None:
    """A sentence for the condition when the clocks differ by more than MAX_CLOCK_SKEW."""
    skew = pod_now - server_now
    if abs(skew) <= MAX_CLOCK_SKEW:
        return None
    seconds = int(skew.total_seconds())
    way = "ahead of" if seconds > 0 else "behind"
    return (
        f"this process's clock is {abs(seconds)} s {way} the database server's "
        f"(more than {int(MAX_CLOCK_SKEW.total_seconds())} s): nothing is exported or dropped "
        "until they agree; check time synchronisation (NTP) on the node and on the server"
    )


def hold_retention(plan: TablePlan, why: str) -> TablePlan:
    """`plan` without its drops and exports, and with the reason as a problem."""
    return dataclasses.replace(
        plan,
        actions=tuple(a for a in plan.actions if not isinstance(a, DropPartition)),
        deferred=tuple(a for a in plan.deferred if not isinstance(a, ExportPartition)),
        problems=(*plan.problems, Problem(Reason.CLOCK_SKEW, why)),
    )
