"""The partitions part: observe -> plan -> apply -> report for `spec.postgres.tables`.

One reconcile runs a few passes of observe/plan/apply so it converges in one go: a partition
created for rows found in DEFAULT is archived in the next pass if it is old enough, and the
report always describes the catalog as it is after the last change. A pass that plans nothing
ends it; a reconcile with nothing to do is one fingerprint of the catalog (the full catalog
query only when it changed since the last look, see clients/postgres/partitions.py), a DEFAULT
count when DEFAULT has pages, and no statement that changes anything.

With apply off (`lokifi-storage plan`, spec.dryRun) it is one observe and plan, and the actions
come back as planned changes instead of being taken.

Failures are per table: an action that fails stops the rest of that table's plan (later actions
may depend on it) while the other tables go on. Compression and export are only planned here and
reported as pending; the CLI Jobs carry them out.

Writers: a table's changes are made under its partition-work lock (an advisory lock on the
primary that the compress/export jobs take too), planned again from a fresh look once it is
held, so whatever another writer did meanwhile is seen, never undone; a table whose lock is
taken is PartitionWorkBusy and retried. A lost Lease (the fence) stops the work in flight and
cancels the statement running. Ages are measured by the database server's clock; when this
process's clock is more than a few minutes off, every drop and export is held (ClockSkew).

With a `claimant` (the resource), each table has one owner, recorded in the table's comment
(reconcile/table_claims.py): a table another resource manages with another table spec is a
Conflict naming the owner, and this resource sends nothing to it; an identical spec is shared.
A table the resource no longer declares, or a deleted resource, is released.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from lokifi_storage.api.conditions import PARTITIONS_READY, Reason
from lokifi_storage.api.names import split_table_name
from lokifi_storage.api.spec import LokifiStorageSpec, PostgresSpec, TableSpec
from lokifi_storage.api.status import (
    Condition,
    LokifiStorageStatus,
    PartitionStatus,
    judged,
    ready,
)
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.partition_pair import apply_actions
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from lokifi_storage.domain.change_plan import Change, ChangeKind
from lokifi_storage.domain.claims import (
    Claimant,
)
from lokifi_storage.domain.partitions.actions import Action
from lokifi_storage.domain.partitions.catalog import ObservedTable, QName
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.index_plan import Problem
from lokifi_storage.domain.partitions.plan import TablePlan, plan_table
from lokifi_storage.domain.partitions.retention_clock import clock_skew, hold_retention
from lokifi_storage.reconcile.fence import Fence, LeadershipLost
from lokifi_storage.reconcile.parts import Part, PartContext, claimant_of
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.table_claims import (
    release_claims,
    release_table_claims,
    settle_table_claims,
)

__all__ = [
    "MAX_PASSES",
    "PART",
    "PartitionOutcome",
    "PartitionsPart",
    "reconcile_partitions",
    "reconcile_tables",
]

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
            status=LokifiStorageStatus(partitions=[self.status_of(p) for p in self.plans.values()]),
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
            return _condition(False, first.reason, message, notes)
        problems = [(name, p) for name, plan in self.plans.items() for p in plan.problems]
        if problems:
            message = "; ".join(f"{name}: {p.message}" for name, p in problems)
            return _condition(False, problems[0][1].reason, message, notes)
        unfinished = [name for name, plan in self.plans.items() if plan.actions]
        if unfinished:
            return _condition(
                False,
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
            return _condition(True, Reason.MAINTENANCE_PENDING, "; ".join(pending), notes)
        count = sum(p.summary.count for p in self.plans.values())
        in_default = sum(p.summary.in_default for p in self.plans.values())
        message = (
            f"{len(self.plans)} tables: {count} partitions, {in_default} rows in DEFAULT partitions"
        )
        return _condition(True, Reason.RECONCILED, message, notes)


def _condition(ok: bool, reason: str, message: str, notes: list[str]) -> Condition:
    text = "; ".join([message, *notes]) if notes else message
    return judged(PARTITIONS_READY, ok, reason, text)


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


def _conflicted(plan: TablePlan, problem: Problem) -> TablePlan:
    return TablePlan(table=plan.table, problems=(problem,), summary=plan.summary)


def reconcile_tables(
    db: PartitionDatabase,
    tables: Sequence[TableSpec],
    now: dt.datetime,
    *,
    max_passes: int = MAX_PASSES,
    apply: bool = True,
    claimant: Claimant | None = None,
    fence: Fence | None = None,
    hold: str | None = None,
    locked_first: bool = False,
) -> PartitionOutcome:
    """Observe, plan and apply up to `max_passes` times; the last plans describe the end state.

    `apply=False`: one observation and plan; its actions become `planned`, none is taken.
    With `claimant`, tables are claimed first (see the module docstring); with `apply=False`
    a table another resource manages is still reported, and no claim is recorded. `fence`
    stops the work when the Lease is lost; `hold` (the clock-skew sentence) keeps every drop
    and export out of the plans.

    `locked_first` (with apply; for tables that are expected to need work, such as the tables
    of a new resource): the first look is taken under the tables' partition-work locks, so it
    is fresh enough to act on, and the actions planned from it are applied at once. That
    spares the look outside the lock, followed by a second one under it, that a pass which may
    find nothing to do takes (it must not lock a table only to look). The claim written in
    between changes only the table's comment, which no plan reads."""
    fence = fence or Fence()
    outcome = PartitionOutcome()
    conflicts: dict[str, Problem] = {}

    def plan(spec: TableSpec, observed: ObservedTable) -> TablePlan:
        made = plan_table(spec, observed, now, database=db.database)
        if hold is not None:
            made = hold_retention(made, hold)
        if spec.name in conflicts:
            made = _conflicted(made, conflicts[spec.name])
        return made

    if not apply:
        observed = db.observe(request_for(tables))
        if claimant is not None:
            conflicts = settle_table_claims(
                db, tables, observed, claimant, outcome.done, outcome.failures, apply=False
            )
        outcome.plans = {spec.name: plan(spec, observed[spec.name]) for spec in tables}
        outcome.planned = planned_changes(outcome.plans)
        return outcome

    def failed(spec: TableSpec, error: ClientError) -> None:
        if fence.lost and not isinstance(error, LeadershipLost):
            error = LeadershipLost(f"{spec.name}: stopped, the Lease was lost")
        outcome.failures[spec.name] = error

    db.before_write = fence.check
    with fence.watch(db.cancel), _stopped_if_lost(fence):
        start = 0
        if locked_first:
            start = 1
            with ExitStack() as held:
                for spec in tables:
                    try:
                        fence.check(f"partition work on {spec.name}")
                        held.enter_context(db.table_lock(QName(*split_table_name(spec.name))))
                    except ClientError as error:
                        failed(spec, error)
                observed = db.observe(request_for(tables), seed=False)
                if claimant is not None:
                    conflicts = settle_table_claims(
                        db, tables, observed, claimant, outcome.done, outcome.failures
                    )
                outcome.plans = {spec.name: plan(spec, observed[spec.name]) for spec in tables}
                for spec in tables:
                    actions = outcome.plans[spec.name].actions
                    if not actions or spec.name in outcome.failures:
                        continue
                    try:
                        apply_actions(db, actions, fence.check, outcome.done)
                    except ClientError as error:
                        failed(spec, error)
        for attempt in range(start, max_passes + 1):
            observed = db.observe(request_for(tables))
            if claimant is not None and attempt == 0:
                conflicts = settle_table_claims(
                    db, tables, observed, claimant, outcome.done, outcome.failures
                )
            outcome.plans = {spec.name: plan(spec, observed[spec.name]) for spec in tables}
            todo = [
                spec
                for spec in tables
                if outcome.plans[spec.name].actions and spec.name not in outcome.failures
            ]
            if not todo or attempt == max_passes:
                break
            for spec in todo:
                try:
                    fence.check(f"partition work on {spec.name}")
                    with db.table_lock(QName(*split_table_name(spec.name))):
                        fresh = plan(spec, db.observe(request_for([spec]))[spec.name])
                        apply_actions(db, fresh.actions, fence.check, outcome.done)
                except ClientError as error:
                    failed(spec, error)
    return outcome


@contextmanager
def _stopped_if_lost(fence: Fence) -> Iterator[None]:
    """A statement cancelled because the Lease was lost fails as LeadershipLost."""
    try:
        yield
    except ClientError as error:
        if fence.lost and not isinstance(error, LeadershipLost):
            raise LeadershipLost(f"partition work stopped: {error.message}") from None
        raise


def reconcile_partitions(
    postgres: PostgresSpec,
    primary_url: str,
    *,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
    apply: bool = True,
    claimant: Claimant | None = None,
    fence: Fence | None = None,
    reported: frozenset[str] | None = None,
    release: bool = True,
) -> PartReport:
    """The PartitionsReady condition and status.partitions for `postgres.tables`.

    Ages are measured by the database server's clock; `now` is this process's clock (default:
    the system's), only compared with it. `at` plans as of an explicit instant instead (what
    `--now` is to the CLI), with no comparison.

    `reported`: the tables the resource's status reports already; a declared table it does
    not report (a new resource's, a table just added) is expected to need partitions, so the
    first look is taken under the locks (`reconcile_tables`' `locked_first`). `release=False`
    skips looking for claims on tables no longer declared: the caller knows there can be none
    (a resource whose spec never changed has only ever claimed the tables it declares).
    """
    if not postgres.tables:
        return PartReport(
            condition=ready(PARTITIONS_READY, "no tables declared"),
            status=LokifiStorageStatus(partitions=[]),
        )
    with open_partition_database(primary_url) as db:
        hold = None
        if at is not None:
            moment = at
        else:
            moment = db.server_now()
            hold = clock_skew(now or dt.datetime.now(dt.UTC), moment)
        outcome = reconcile_tables(
            db,
            postgres.tables,
            moment,
            apply=apply,
            claimant=claimant,
            fence=fence,
            hold=hold,
            locked_first=apply
            and reported is not None
            and any(t.name not in reported for t in postgres.tables),
        )
        if claimant is not None and apply and release:
            declared = {QName.parse(t.name) for t in postgres.tables}
            outcome.done += release_claims(db, claimant, lambda q: q not in declared)
        return outcome.report()


class PartitionsPart:
    """spec.postgres.tables: PartitionsReady, status.partitions, the claims of the tables."""

    name = "partitions"
    conditions = (PARTITIONS_READY,)
    status_keys = ("partitions",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.postgres is not None and bool(spec.postgres.tables)

    def run(self, ctx: PartContext) -> list[PartReport]:
        postgres = ctx.spec.postgres
        assert postgres is not None
        report = reconcile_partitions(
            postgres,
            ctx.secrets.value(postgres.primary.secretRef),
            now=ctx.now,
            apply=ctx.apply,
            claimant=claimant_of(ctx),
            fence=ctx.fence,
            at=ctx.at,
            reported=frozenset(p.table for p in ctx.status.partitions),
            # metadata.generation 1: the spec never changed, so the only tables this resource
            # ever claimed are the ones it declares now.
            release=ctx.generation != 1,
        )
        return [report]

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []  # partitions are data: never dropped for a deleted resource

    def release(self, ctx: PartContext) -> list[str]:
        postgres = ctx.spec.postgres
        assert postgres is not None
        url = ctx.secrets.value(postgres.primary.secretRef)
        return release_table_claims(url, claimant_of(ctx), ctx.fence.check)


PART: Part = PartitionsPart()
