"""Step 1 of `migrate sqlite`: the read-only checks, before anything is written.

The file is SQLite, not damaged (quick_check, in a thread while the rows are bucketed) nor
locked; every table the resource declares exists in it; every existing target table fits its
SQLite table column by column and holds no rows unless an earlier run left a checkpoint. Kept
apart from the run (jobs/migrate_run.py) because it decides everything about each table's
target (`DecidedTable`) without a single write, which the dry run relies on.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.errors import ClientError, SourceCorrupt, SourceLocked
from lokifi_storage.clients.migrate_target import MigrateTarget
from lokifi_storage.clients.sqlite_copy import available as compiled_reader_available
from lokifi_storage.clients.sqlite_copy import hour_counts
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_chunks import Checkpoint
from lokifi_storage.domain.migrate_plan import HourReader, buckets_of
from lokifi_storage.domain.migrate_schema import (
    SourceTable,
    compatibility_problems,
    load_order,
    planned_target,
    target_name,
)
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.jobs.migrate_options import (
    EXIT_INCOMPATIBLE,
    EXIT_LOCKED,
    EXIT_MISSING_TABLE,
    EXIT_NOT_SQLITE,
    DecidedTable,
    MigrateError,
    MigrateOptions,
)

__all__ = ["IntegrityCheck", "decide", "open_source", "source_error", "source_tables"]


def source_error(error: ClientError) -> MigrateError:
    if isinstance(error, SourceCorrupt):
        return MigrateError(error.message, EXIT_NOT_SQLITE)
    if isinstance(error, SourceLocked):
        return MigrateError(error.message, EXIT_LOCKED)
    return MigrateError(error.message)


def open_source(options: MigrateOptions) -> SqliteSource:
    try:
        return SqliteSource(options.sqlite_path, busy_timeout_ms=options.busy_timeout_ms)
    except ClientError as error:
        raise source_error(error) from error


class IntegrityCheck:
    """`PRAGMA quick_check` on its own connection, in a thread: SQLite reads the whole file in
    C without the GIL while the time buckets are counted; `result()` is awaited before the
    first write."""

    def __init__(self, options: MigrateOptions) -> None:
        self.options = options
        self.error: ClientError | None = None
        self.thread = threading.Thread(target=self._run, name="sqlite-quick-check", daemon=True)
        if options.check_integrity:
            self.thread.start()

    def _run(self) -> None:
        try:
            source = SqliteSource(
                self.options.sqlite_path, busy_timeout_ms=self.options.busy_timeout_ms
            )
            try:
                source.check_integrity()
            finally:
                source.close()
        except ClientError as error:
            self.error = error

    def result(self) -> None:
        if self.thread.is_alive() or self.thread.ident is not None:
            self.thread.join()
        if self.error is not None:
            raise source_error(self.error)


def source_tables(source: SqliteSource, declared: Sequence[TableSpec]) -> list[SourceTable]:
    names = source.table_names()
    missing = [s.name for s in declared if QName.parse(s.name).name not in names]
    if missing:
        raise MigrateError(
            f"{source.path} has no table {', '.join(missing)}, which the resource declares "
            f"(tables in the file: {', '.join(names) or 'none'})",
            EXIT_MISSING_TABLE,
        )
    tables = load_order([source.table(n) for n in names])
    without_rowid = [t.name for t in tables if not t.rowid]
    if without_rowid:
        raise MigrateError(
            f"{source.path}: WITHOUT ROWID table(s) {', '.join(without_rowid)} are not supported "
            "(the checkpoints count rows by rowid)",
            EXIT_INCOMPATIBLE,
        )
    return tables


def _time_buckets(
    source: SqliteSource, table: SourceTable, spec: TableSpec
) -> dict[dt.datetime, int]:
    assert spec.partitionBy is not None
    column = spec.partitionBy.column
    if column not in {c.name for c in table.copied}:
        raise MigrateError(
            f"{source.path}: table {table.name} has no column {column}, which the resource "
            "partitions it by",
            EXIT_INCOMPATIBLE,
        )
    reader = HourReader()
    if compiled_reader_available():
        # The common naive ISO times are counted in C, the other values by HourReader.
        counted = hour_counts(
            source.path, table.name, column, reader, busy_timeout_ms=source.busy_timeout_ms
        )
        for hour, rows in counted.items():
            reader.hours[hour] = reader.hours.get(hour, 0) + rows
    else:
        source.visit_values(table.name, column, reader)
    return buckets_of(reader.hours, spec.partitionBy.interval)


def decide(
    source: SqliteSource,
    target: MigrateTarget,
    tables: list[SourceTable],
    declared: Sequence[TableSpec],
    checkpoints: dict[str, Checkpoint],
) -> list[DecidedTable]:
    problems: list[str] = []
    out: list[DecidedTable] = []
    for table in tables:
        qname, spec = target_name(table.name, declared)
        existing = target.observe(qname)
        archive = (
            QName(spec.archive.schema_, qname.name)
            if spec is not None and spec.archive is not None
            else None
        )
        planned = planned_target(table, qname, spec)
        if existing is None:
            decided = planned
        else:
            decided = existing
            problems.extend(compatibility_problems(table, existing))
            by = spec.partitionBy if spec is not None else None
            if by is not None and existing.partition_column != by.column:
                problems.append(
                    f"{qname} exists but is not PARTITION BY RANGE ({by.column}) as the resource "
                    "declares; recreate it partitioned, or let the migration create it"
                )
            if table.name not in checkpoints:
                relations = [
                    qname,
                    *([archive] if archive and target.relation_exists(archive) else []),
                ]
                if target.has_rows(relations):
                    problems.append(
                        f"{qname} already holds rows and no earlier migrate run left a "
                        "checkpoint for it; empty it (or drop it) so that rows are not duplicated"
                    )
        buckets = (
            _time_buckets(source, table, spec)
            if spec is not None and spec.partitionBy is not None
            else {}
        )
        point = checkpoints.get(table.name)
        out.append(
            DecidedTable(
                table,
                spec,
                decided,
                source.count(table.name),
                buckets,
                archive,
                key=planned.primary_key,
                owned=existing is None or (point is not None and point.created),
            )
        )
    if problems:
        raise MigrateError("; ".join(problems), EXIT_INCOMPATIBLE)
    return out
