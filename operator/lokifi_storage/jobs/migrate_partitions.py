"""Step 2 of `migrate sqlite`: the partitions of the declared tables, for the whole time range
of the data, made (and archived) by the partition planner as a reconcile would; and what the
dry run prints instead.

Apart from the run (jobs/migrate_run.py) because it is the one place the migration hands its
tables to the partition planner (domain/partitions/): the plan, the actions it may take (never
a drop) and the router that sends old rows to the archive table.
"""

from __future__ import annotations

import datetime as dt

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.domain.migrate_chunks import Checkpoint
from lokifi_storage.domain.migrate_plan import ArchiveRouter, with_pending_buckets
from lokifi_storage.domain.partitions.actions import (
    Action,
    ArchivePartition,
    CreatePartition,
    DropPartition,
)
from lokifi_storage.domain.partitions.bounds import TimeRange
from lokifi_storage.domain.partitions.catalog import Column, ObservedRelation, ObservedTable
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.plan import plan_table
from lokifi_storage.jobs.migrate_options import (
    EXIT_INCOMPATIBLE,
    MAX_PARTITION_PASSES,
    DecidedTable,
    MigrateError,
)
from lokifi_storage.jobs.progress import Reporter

__all__ = ["make_partitions", "partition_actions", "print_plan"]


def _virtual_observed(table: DecidedTable) -> ObservedTable:
    """The catalog as it will look once the table is created, for the dry run's plan."""
    assert table.spec is not None
    assert table.spec.partitionBy is not None
    relation = ObservedRelation(
        qname=table.target.qname,
        kind="p",
        key_strategy="r",
        key_columns=(table.spec.partitionBy.column,),
        key_types=("timestamp with time zone",),
        columns=tuple(Column(c.name, c.type) for c in table.target.columns),
    )
    return ObservedTable(qname=table.target.qname, relation=relation)


def partition_actions(
    table: DecidedTable,
    observed: ObservedTable,
    now: dt.datetime,
    database: str,
    spec: TableSpec | None = None,
) -> list[Action]:
    spec = spec or table.spec
    assert spec is not None
    plan = plan_table(spec, with_pending_buckets(observed, table.buckets), now, database=database)
    if plan.problems:
        raise MigrateError(
            "; ".join(f"{table.target.qname}: {p.message}" for p in plan.problems),
            EXIT_INCOMPATIBLE,
        )
    # Dropping is left to the reconciler: the migration never discards rows.
    return [a for a in plan.actions if not isinstance(a, DropPartition)]


def make_partitions(
    db: PartitionDatabase, table: DecidedTable, now: dt.datetime, reporter: Reporter
) -> None:
    spec = table.deferred_spec
    assert spec is not None
    created = archived = 0
    for _ in range(MAX_PARTITION_PASSES):
        observed = db.observe(request_for([spec]))[spec.name]
        actions = partition_actions(table, observed, now, db.database, spec)
        if not actions:
            break
        for action in actions:
            try:
                db.apply(action)
            except ClientError as error:
                raise MigrateError(f"{table.target.qname}: {error.message}") from error
            created += isinstance(action, CreatePartition) and action.parent == table.target.qname
            archived += isinstance(action, ArchivePartition)
    else:
        raise MigrateError(
            f"{table.target.qname}: partitions still planned after {MAX_PARTITION_PASSES} passes"
        )
    if created or archived:
        reporter.info(
            f"{table.target.qname}: {created} partitions made, {archived} of them archived "
            f"to {table.archive}"
        )
    observed = db.observe(request_for([spec]))[spec.name]
    ranges: list[TimeRange] = []
    if observed.archive is not None:
        for child in observed.archive.children:
            pair = child.bound.time_range() if child.bound else None
            if pair is not None and pair[0] < pair[1]:
                ranges.append(TimeRange(pair[0], pair[1]))
    if ranges and table.archive is not None:
        key_type = observed.archive.key_types[0] if observed.archive else ""
        table.router = ArchiveRouter(ranges, width=10 if key_type == "date" else 26)


def _dry_run_partitions(
    table: DecidedTable, observed: ObservedTable, now: dt.datetime
) -> tuple[int, int]:
    """Partitions the run would make for the data, and how many of them go to the archive."""
    assert table.spec is not None
    assert table.spec.partitionBy is not None
    actions = partition_actions(table, observed, now, "")
    made = [a for a in actions if isinstance(a, CreatePartition) and a.parent == table.target.qname]
    archive = table.spec.archive
    if archive is None:
        return len(made), 0
    before = now - dt.timedelta(days=archive.afterDays)
    drop = table.spec.retention.dropAfterDays if table.spec.retention else None
    drop_before = now - dt.timedelta(days=drop) if drop else None
    count = 0
    for action in made:
        pair = action.partition.bound.time_range()
        if pair is None:
            continue
        if pair[1] <= before and not (drop_before and pair[1] <= drop_before):
            count += 1
    return len(made), count


def print_plan(
    db: PartitionDatabase,
    tables: list[DecidedTable],
    checkpoints: dict[str, Checkpoint],
    now: dt.datetime,
    reporter: Reporter,
) -> None:
    for table in tables:
        state = "exists" if table.target.exists else "to create"
        point = checkpoints.get(table.source.name)
        resume = ""
        if point is not None:
            resume = (
                " (already loaded)"
                if point.finished
                else f" (resuming: {point.rows_copied} rows already in)"
            )
        reporter.info(
            f"{table.source.name} -> {table.target.qname} ({state}): {table.rows} rows{resume}"
        )
        for column in table.source.copied:
            pg = table.target.column(column.name)
            reporter.info(
                f"  {column.name} {column.declared or '(untyped)'} -> "
                f"{pg.type if pg else '?'}{' NOT NULL' if pg and pg.not_null else ''}"
            )
        if table.spec is not None and table.spec.partitionBy is not None:
            observed = (
                db.observe(request_for([table.spec]))[table.spec.name]
                if table.target.exists
                else _virtual_observed(table)
            )
            made, archived = _dry_run_partitions(table, observed, now)
            first = min(table.buckets) if table.buckets else None
            last = max(table.buckets) if table.buckets else None
            span = f", data from {first.date()} to {last.date()}" if first and last else ""
            where = f", {archived} of them into {table.archive}" if table.archive else ""
            reporter.info(f"  partitions to make: {made}{where}{span}")
    reporter.info("dry run: nothing was changed")
