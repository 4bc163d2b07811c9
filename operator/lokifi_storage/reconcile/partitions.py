"""The partitions part: observe -> plan -> apply -> report for `spec.postgres.tables`.

One reconcile runs a few passes of observe/plan/apply so it converges in one go: a partition
created for rows found in DEFAULT is archived in the next pass if it is old enough, and the
report always describes the catalog as it is after the last change. A pass that plans nothing
ends it; a reconcile with nothing to do is one catalog query (plus a DEFAULT count when DEFAULT
has pages) and no statement that changes anything.

With apply off (`lokifi-storage plan`, spec.dryRun) it is one observe and plan, and the actions
come back as planned changes instead of being taken.

Failures are per table: an action that fails stops the rest of that table's plan (later actions
may depend on it) while the other tables go on. Compression and export are only planned here and
reported as pending; the CLI Jobs carry them out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from lokifi_storage.api.conditions import PARTITIONS_READY, Reason
from lokifi_storage.api.spec import PostgresSpec, TableSpec
from lokifi_storage.api.status import Condition, ConditionStatus, PartitionStatus
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres import PartitionDatabase, open_partition_database
from lokifi_storage.domain.change_plan import Change, ChangeKind
from lokifi_storage.domain.partition_actions import Action
from lokifi_storage.domain.partition_plan import TablePlan, plan_table
from lokifi_storage.reconcile.report import PartReport

__all__ = ["MAX_PASSES", "PartitionOutcome", "reconcile_partitions", "reconcile_tables"]

MAX_PASSES = 3


@dataclass
class PartitionOutcome:
    """What a reconcile did (`done`), what failed, and the plans of the final observation."""

    plans: dict[str, TablePlan] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    failures: dict[str, ClientError] = field(default_factory=dict)
    planned: list[Change] = field(default_factory=list)

    def report(self) -> PartReport:
        return PartReport(
            condition=self.condition(),
            status={"partitions": [self.status_of(p).model_dump() for p in self.plans.values()]},
            actions=list(self.done),
            planned=list(self.planned),
        )

    @staticmethod
    def status_of(plan: TablePlan) -> PartitionStatus:
        s = plan.summary
        return PartitionStatus(
            table=s.table,
            count=s.count,
            oldest=s.oldest,
            newest=s.newest,
            inDefault=s.in_default,
            archived=s.archived,
            pendingCompress=s.pending_compress,
            pendingExport=s.pending_export,
        )

    def condition(self) -> Condition:
        notes = [f"{name}: {note}" for name, plan in self.plans.items() for note in plan.notes]
        if self.failures:
            first = next(iter(self.failures.values()))
            message = "; ".join(f"{name}: {error.message}" for name, error in self.failures.items())
            return _condition("False", first.reason, message, notes)
        problems = [(name, p) for name, plan in self.plans.items() for p in plan.problems]
        if problems:
            message = "; ".join(f"{name}: {p.message}" for name, p in problems)
            return _condition("False", problems[0][1].reason, message, notes)
        unfinished = [name for name, plan in self.plans.items() if plan.actions]
        if unfinished:
            return _condition(
                "False",
                Reason.PROGRESSING,
                f"more work left after {MAX_PASSES} passes for {', '.join(unfinished)}",
                notes,
            )
        compress = sum(p.summary.pending_compress for p in self.plans.values())
        export = sum(p.summary.pending_export for p in self.plans.values())
        if compress or export:
            pending = []
            if compress:
                pending.append(
                    f"{compress} archived partitions await `lokifi-storage partitions compress`"
                )
            if export:
                pending.append(
                    f"{export} expired partitions await `lokifi-storage partitions export`"
                )
            return _condition("True", Reason.MAINTENANCE_PENDING, "; ".join(pending), notes)
        count = sum(p.summary.count for p in self.plans.values())
        in_default = sum(p.summary.in_default for p in self.plans.values())
        message = (
            f"{len(self.plans)} tables: {count} partitions, {in_default} rows in DEFAULT partitions"
        )
        return _condition("True", Reason.RECONCILED, message, notes)


def _condition(status: ConditionStatus, reason: str, message: str, notes: list[str]) -> Condition:
    text = "; ".join([message, *notes]) if notes else message
    return Condition(
        type=PARTITIONS_READY,
        status=status,
        reason=reason,
        message=text,
    )


def _kind(action: Action) -> ChangeKind:
    name = type(action).__name__
    if name.startswith("Create") or name.startswith("Build"):
        return "create"
    if name.startswith("Drop"):
        return "delete"
    return "update"


def planned_changes(plans: dict[str, TablePlan]) -> list[Change]:
    """The immediate actions of `plans` as changes (deferred Job work is not a reconcile's)."""
    return [
        Change("partitions", name, _kind(action), action.describe())
        for name, plan in plans.items()
        for action in plan.actions
    ]


def reconcile_tables(
    db: PartitionDatabase,
    tables: Sequence[TableSpec],
    now: dt.datetime,
    *,
    max_passes: int = MAX_PASSES,
    apply: bool = True,
) -> PartitionOutcome:
    """Observe, plan and apply up to `max_passes` times; the last plans describe the end state.

    `apply=False`: one observation and plan; its actions become `planned`, none is taken."""
    outcome = PartitionOutcome()
    if not apply:
        observed = db.observe(tables)
        outcome.plans = {
            spec.name: plan_table(spec, observed[spec.name], now, database=db.database)
            for spec in tables
        }
        outcome.planned = planned_changes(outcome.plans)
        return outcome
    for attempt in range(max_passes + 1):
        observed = db.observe(tables)
        outcome.plans = {
            spec.name: plan_table(spec, observed[spec.name], now, database=db.database)
            for spec in tables
        }
        todo = [
            spec
            for spec in tables
            if outcome.plans[spec.name].actions and spec.name not in outcome.failures
        ]
        if not todo or attempt == max_passes:
            break
        for spec in todo:
            for action in outcome.plans[spec.name].actions:
                try:
                    db.apply(action)
                except ClientError as error:
                    outcome.failures[spec.name] = error
                    break
                outcome.done.append(action.describe())
    return outcome


def reconcile_partitions(
    postgres: PostgresSpec,
    primary_url: str,
    *,
    now: dt.datetime | None = None,
    apply: bool = True,
) -> PartReport:
    """The PartitionsReady condition and status.partitions for `postgres.tables`."""
    if not postgres.tables:
        return PartReport(
            condition=Condition(
                type=PARTITIONS_READY,
                status="True",
                reason=Reason.RECONCILED,
                message="no tables declared",
            ),
            status={"partitions": []},
        )
    moment = now or dt.datetime.now(dt.UTC)
    with open_partition_database(primary_url) as db:
        return reconcile_tables(db, postgres.tables, moment, apply=apply).report()
