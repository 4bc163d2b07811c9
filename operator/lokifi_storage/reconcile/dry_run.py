"""Dry run (spec.dryRun, `lokifi-storage plan`): the writes a pass found and did not make.

Each part and owned object hands back its planned writes in its report; here they are put on
the report of the condition they belong to, a part with changes pending reads False/DryRun, and
status.plan lists them. Events are posted only when the plan differs from the one in status, so
a steady dry-run writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.status import LokifiStorageStatus, PlanStatus, failed
from lokifi_storage.domain.change_plan import Change, plan_status
from lokifi_storage.domain.events import EventSpec
from lokifi_storage.reconcile.report import PartReport

__all__ = ["MAX_PLAN_EVENTS", "add_planned", "mark_dry_run"]

# Planned-change Events posted when a dry-run plan changes; the rest are in status.plan.
MAX_PLAN_EVENTS: Final = 20


def add_planned(
    reports: list[PartReport], kinds: Sequence[str], planned: Sequence[Change]
) -> list[PartReport]:
    """Add `planned` to the report of the first condition of `kinds` present (else to the
    first report: the changes are listed even when their part timed out)."""
    if not planned or not reports:
        return reports
    kinds_present = [r.condition.type for r in reports]
    kind = next((k for k in kinds if k in kinds_present), kinds_present[0])
    index = kinds_present.index(kind)
    updated = replace(reports[index], planned=[*reports[index].planned, *planned])
    return [*reports[:index], updated, *reports[index + 1 :]]


def mark_dry_run(
    reports: list[PartReport], generation: int | None, current: LokifiStorageStatus
) -> tuple[list[PartReport], PlanStatus, list[EventSpec]]:
    """Dry-run reports: a part with changes pending reads False/DryRun (unless it already
    failed for its own reason); status.plan; and Events when the plan differs from the one in
    status (a steady dry-run posts nothing)."""
    changes = [change for report in reports for change in report.planned]
    out: list[PartReport] = []
    for report in reports:
        pending = report.condition.status == "True" or report.condition.reason == Reason.PROGRESSING
        if report.planned and pending:
            first = "; ".join(c.describe() for c in report.planned[:3])
            more = f" and {len(report.planned) - 3} more" if len(report.planned) > 3 else ""
            condition = failed(
                report.condition.type,
                Reason.DRY_RUN,
                f"dry run: {len(report.planned)} change(s) planned, none applied: {first}{more}",
            )
            report = replace(report, condition=condition)
        out.append(report)
    block = PlanStatus.model_validate(plan_status(changes, generation))
    events: list[EventSpec] = []
    if current.plan != block:
        events.append(EventSpec("Normal", Reason.DRY_RUN, f"dry run: {block.summary}"))
        events += [
            EventSpec("Normal", Reason.PLANNED, f"would {change.describe()}")
            for change in sorted(changes, key=lambda c: (c.part, c.target))[:MAX_PLAN_EVENTS]
        ]
    return out, block, events
