"""A resource's plan as text (grouped by part and target, like `terraform plan`) and as JSON.

Both come from the same `ResourcePlan`: the changes every part's planner found, and the part
reports, whose conditions say which parts could not be planned (a missing Secret, a server that
does not answer) and which maintenance waits for the partition Jobs. Secret values never appear:
changes to the connection Secret name keys only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from lokifi_storage.admin.paint import Painter
from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.change_plan import PARTS, Change
from lokifi_storage.domain.conditions import reported_blocks
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.results import ResourcePlan

__all__ = ["PlanView", "plan_json", "plan_text"]

_SIGN: Final = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}

# Conditions False for these reasons still describe a complete plan: the part was observed.
_OBSERVED: Final = {Reason.DRY_RUN, Reason.PROGRESSING, Reason.MAINTENANCE_PENDING}


@dataclass(frozen=True)
class PlanView:
    """What to render: the plan and whose it is."""

    namespace: str
    name: str
    plan: ResourcePlan

    def unplanned(self) -> list[PartReport]:
        """Parts that could not be observed, so the plan may miss their changes."""
        return [
            r
            for r in self.plan.reports
            if r.condition.status != "True"
            and not reported_blocks(r.status)
            and r.condition.reason not in _OBSERVED
        ]

    def problems(self) -> list[PartReport]:
        """Parts observed but not at the declared state for a reason a plan does not fix."""
        return [
            r
            for r in self.plan.reports
            if r.condition.status != "True"
            and reported_blocks(r.status)
            and r.condition.reason not in _OBSERVED
        ]

    def job_work(self) -> list[str]:
        """Partition work the Jobs do, not the reconcile: listed, not counted as changes."""
        out: list[str] = []
        for report in self.plan.reports:
            for table in report.status.partitions:
                if table.pendingCompress:
                    out.append(
                        f"{table.table}: {table.pendingCompress} archived partition(s) "
                        "for `lokifi-storage partitions compress`"
                    )
                if table.pendingExport:
                    out.append(
                        f"{table.table}: {table.pendingExport} expired partition(s) "
                        "for `lokifi-storage partitions export`"
                    )
        return out

    @property
    def complete(self) -> bool:
        return not self.unplanned()


def _part_key(change: Change) -> tuple[int, str]:
    return (PARTS.index(change.part) if change.part in PARTS else len(PARTS), change.target)


def plan_text(view: PlanView, paint: Painter) -> str:
    """The plan for a human: part, target, one line per change with its fields."""
    lines = [paint(f"Plan for LokifiStorage {view.namespace}/{view.name}", "bold"), ""]
    changes: Sequence[Change] = sorted(view.plan.changes, key=_part_key)
    part = target = None
    for change in changes:
        if change.part != part:
            part, target = change.part, None
            lines.append(paint(change.part, "bold"))
        if change.target != target:
            target = change.target
            lines.append(f"  {target}")
        sign, colour = _SIGN[change.kind]
        lines.append(f"    {paint(sign, colour)} {change.detail}")
        lines += [f"        {field.describe()}" for field in change.fields]
    if not changes:
        lines.append("Every part is at the declared state.")
    work = view.job_work()
    if work:
        lines += ["", paint("Waiting for the partition Jobs (not done by a reconcile):", "bold")]
        lines += [f"  {item}" for item in work]
    for title, reports in (
        ("Not planned (could not be observed):", view.unplanned()),
        ("Problems a reconcile would report:", view.problems()),
    ):
        if reports:
            lines += ["", paint(title, "red")]
            lines += [
                f"  {r.condition.type} ({r.condition.reason}): {r.condition.message}"
                for r in reports
            ]
    lines += ["", paint(view.plan.summary, "bold")]
    return "\n".join(lines) + "\n"


def plan_json(view: PlanView) -> dict[str, Any]:
    """The plan for a pipeline: `changes` as status.plan lists them, and what was not planned."""
    counts = {kind: sum(1 for c in view.plan.changes if c.kind == kind) for kind in _SIGN}
    return {
        "resource": {"namespace": view.namespace, "name": view.name},
        "summary": view.plan.summary,
        "complete": view.complete,
        "counts": counts,
        "changes": [c.public() for c in sorted(view.plan.changes, key=_part_key)],
        "jobWork": view.job_work(),
        "notPlanned": [_condition(r) for r in view.unplanned()],
        "problems": [_condition(r) for r in view.problems()],
    }


def _condition(report: PartReport) -> dict[str, str]:
    c = report.condition
    return {"condition": c.type, "reason": c.reason, "message": c.message}
