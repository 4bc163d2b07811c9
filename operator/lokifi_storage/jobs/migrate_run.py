"""`lokifi-storage migrate sqlite`: every row of the app's SQLite file into the managed PostgreSQL.

Order of work, each step finished before the next starts:
  1. read-only checks, nothing written: the file is SQLite and not damaged (quick_check) nor
     locked; every table the resource declares exists in it; every existing target table fits
     its SQLite table column by column and holds no rows unless an earlier run left a checkpoint;
  2. target tables created from the SQLite schema where they do not exist (PARTITION BY RANGE
     for the declared ones), then their partitions for the whole time range of the data, made
     and archived by the partition planner as a reconcile would (domain/migrate_plan.py);
  3. rows in rowid order, chunk by chunk, each chunk one transaction with its checkpoint;
  4. sequences set past the loaded maximum; on the tables this run created, the primary key
     and the declared indexes (left out of steps 2-3 when that is safe, jobs/migrate_keys.py),
     SQLite's indexes and foreign keys;
  5. verification (default on): per table, the source's row count equals rows copied plus rows
     rejected, and count and digest of the target equal those of the converted source rows.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.errors import ClientError, SourceCorrupt, SourceLocked
from lokifi_storage.clients.migrate_sql import (
    create_table,
    foreign_key,
    index_statement,
    set_sequences,
)
from lokifi_storage.clients.migrate_target import Checkpoint, MigrateTarget
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_plan import (
    ArchiveRouter,
    HourReader,
    buckets_of,
    with_pending_buckets,
)
from lokifi_storage.domain.migrate_schema import (
    SourceTable,
    TargetColumn,
    TargetTable,
    compatibility_problems,
    load_order,
    planned_target,
    target_name,
)
from lokifi_storage.domain.partitions.actions import (
    Action,
    ArchivePartition,
    CreatePartition,
    DropPartition,
)
from lokifi_storage.domain.partitions.bounds import TimeRange
from lokifi_storage.domain.partitions.catalog import (
    Column,
    ObservedRelation,
    ObservedTable,
    QName,
)
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.plan import plan_table
from lokifi_storage.jobs.migrate_convert import (
    ChunkProducer,
    ConvertSetup,
    RowConverter,
    close_sources,
    conversion_pool,
)
from lokifi_storage.jobs.migrate_keys import (
    Statement,
    defers_primary_key,
    index_builds,
    primary_key_statements,
    run_parallel,
    share_out,
)
from lokifi_storage.jobs.migrate_progress import RowProgress
from lokifi_storage.jobs.outcome import JobError
from lokifi_storage.jobs.progress import Reporter

__all__ = [
    "EXIT_INCOMPATIBLE",
    "EXIT_LOCKED",
    "EXIT_MISMATCH",
    "EXIT_MISSING_TABLE",
    "EXIT_NOT_SQLITE",
    "EXIT_REJECTS",
    "MigrateError",
    "MigrateOptions",
    "MigrateSummary",
    "run_migrate",
]

EXIT_NOT_SQLITE = 3
EXIT_MISMATCH = 4
EXIT_MISSING_TABLE = 5
EXIT_LOCKED = 6
EXIT_INCOMPATIBLE = 7
EXIT_REJECTS = 8

MAX_PARTITION_PASSES = 20


class MigrateError(JobError):
    """A migration that cannot start or did not verify; `exit_code` tells which."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message, reason="MigrateFailed")
        self.exit_code = exit_code


@dataclass(frozen=True)
class MigrateOptions:
    sqlite_path: Path
    url: str
    tables: Sequence[TableSpec] = ()
    verify: bool = True
    dry_run: bool = False
    chunk_rows: int = 20_000
    chunk_bytes: int = 32 * 1024 * 1024
    writers: int = 2
    converters: int = 0  # processes reading and converting rows (0: a thread of this one)
    busy_timeout_ms: int = 5_000
    check_integrity: bool = True
    now: dt.datetime | None = None


@dataclass
class TableResult:
    source: str
    target: QName
    source_rows: int
    copied: int = 0
    rejected: int = 0
    created: bool = False
    partitions: int = 0
    archived_partitions: int = 0
    verified: bool | None = None
    mismatch: str | None = None


@dataclass
class MigrateSummary:
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables)

    @property
    def exit_code(self) -> int:
        if any(t.verified is False for t in self.tables):
            return EXIT_MISMATCH
        if self.rejected:
            return EXIT_REJECTS
        return 0


@dataclass
class _Table:
    """One SQLite table and everything decided about its target."""

    source: SourceTable
    spec: TableSpec | None
    target: TargetTable
    rows: int
    buckets: dict[dt.datetime, int] = field(default_factory=dict)
    archive: QName | None = None
    router: ArchiveRouter | None = None
    key: tuple[str, ...] = ()  # the primary key a created table gets
    owned: bool = False  # created by this migration (now or by an earlier run)

    @property
    def deferred_spec(self) -> TableSpec | None:
        """The spec the partitions are made with before the rows: without its indexes when
        the table is the migration's own (they are built after the rows)."""
        if self.spec is None or not self.owned or not self.spec.indexes:
            return self.spec
        return self.spec.model_copy(update={"indexes": []})

    @property
    def relations(self) -> list[QName]:
        return [self.target.qname, *([self.archive] if self.archive else [])]


# --- 1. read-only checks ---------------------------------------------------------------------


def _source_error(error: ClientError) -> MigrateError:
    if isinstance(error, SourceCorrupt):
        return MigrateError(error.message, EXIT_NOT_SQLITE)
    if isinstance(error, SourceLocked):
        return MigrateError(error.message, EXIT_LOCKED)
    return MigrateError(error.message)


def _open_source(options: MigrateOptions) -> SqliteSource:
    try:
        return SqliteSource(options.sqlite_path, busy_timeout_ms=options.busy_timeout_ms)
    except ClientError as error:
        raise _source_error(error) from error


class _IntegrityCheck:
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
            raise _source_error(self.error)


def _source_tables(source: SqliteSource, declared: Sequence[TableSpec]) -> list[SourceTable]:
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
    source.visit_values(table.name, column, reader)
    return buckets_of(reader.hours, spec.partitionBy.interval)


def _decide(
    source: SqliteSource,
    target: MigrateTarget,
    tables: list[SourceTable],
    declared: Sequence[TableSpec],
    checkpoints: dict[str, Checkpoint],
) -> list[_Table]:
    problems: list[str] = []
    out: list[_Table] = []
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
            _Table(
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


# --- 2. tables and partitions ----------------------------------------------------------------


def _virtual_observed(table: _Table) -> ObservedTable:
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


def _partition_actions(
    table: _Table,
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


def _make_partitions(
    db: PartitionDatabase, table: _Table, now: dt.datetime, reporter: Reporter
) -> None:
    spec = table.deferred_spec
    assert spec is not None
    created = archived = 0
    for _ in range(MAX_PARTITION_PASSES):
        observed = db.observe(request_for([spec]))[spec.name]
        actions = _partition_actions(table, observed, now, db.database, spec)
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
    table: _Table, observed: ObservedTable, now: dt.datetime
) -> tuple[int, int]:
    """Partitions the run would make for the data, and how many of them go to the archive."""
    assert table.spec is not None
    assert table.spec.partitionBy is not None
    actions = _partition_actions(table, observed, now, "")
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


# --- the run ---------------------------------------------------------------------------------


def run_migrate(options: MigrateOptions, reporter: Reporter) -> MigrateSummary:
    started = time.monotonic()
    now = options.now or dt.datetime.now(dt.UTC)
    summary = MigrateSummary()
    source = _open_source(options)
    integrity = _IntegrityCheck(options)
    try:
        tables = _source_tables(source, options.tables)
        target = MigrateTarget.open(options.url)
        try:
            checkpoints = target.checkpoints()
            decided = _decide(source, target, tables, options.tables, checkpoints)
            integrity.result()
            with open_partition_database(options.url) as db:
                # Nobody uses the tables yet: DDL need not wait for its WAL flush (a crash
                # loses at most the last steps, which the next run plans again).
                db.conn.execute("SET synchronous_commit = off")
                if options.dry_run:
                    _print_plan(db, decided, checkpoints, now, reporter)
                    summary.seconds = time.monotonic() - started
                    return summary
                target.ensure_state()
                for table in decided:
                    result = TableResult(table.source.name, table.target.qname, table.rows)
                    summary.tables.append(result)
                    if not table.target.exists:
                        target.create_table(
                            create_table(
                                table.target,
                                with_primary_key=not defers_primary_key(table.source, table.target),
                            ),
                            table.source.name,
                            table.target.qname,
                        )
                        reporter.info(f"created {table.target.qname}")
                    if table.spec is not None and table.spec.partitionBy is not None:
                        _make_partitions(db, table, now, reporter)
            total = sum(t.rows for t in decided)
            done = sum(c.rows_copied + c.rows_rejected for c in checkpoints.values())
            writers = [target] + [
                MigrateTarget.open(options.url) for _ in range(options.writers - 1)
            ]
            try:
                pool = conversion_pool(options.converters)
                try:
                    with RowProgress(reporter, total, done) as progress:
                        for table in decided:
                            _load(source, pool, writers, table, options, progress, reporter)
                finally:
                    pool.shutdown(wait=False, cancel_futures=True)
                    close_sources()
                checkpoints = target.checkpoints()
                verification = (
                    _Verification(source, options, decided, summary.tables, checkpoints, reporter)
                    if options.verify
                    else None
                )
                try:
                    with open_partition_database(options.url) as db:
                        for table, result in zip(decided, summary.tables, strict=True):
                            point = checkpoints[table.source.name]
                            result.copied = point.rows_copied
                            result.rejected = point.rows_rejected
                            result.created = point.created
                            _finish_table(db, writers, table, point.created, now, reporter)
                    created_now = {r.source for r in summary.tables if r.created}
                    summary.warnings.extend(_foreign_keys(target, decided, created_now, reporter))
                except BaseException:
                    if verification is not None:
                        verification.join(quiet=True)
                    raise
                if verification is not None:
                    verification.join()
            finally:
                for extra in writers[1:]:
                    extra.close()
        finally:
            target.close()
    except ClientError as error:
        raise _source_error(error) from error
    finally:
        source.close()
    summary.seconds = time.monotonic() - started
    return summary


def _load(
    source: SqliteSource,
    pool: Executor,
    writers: list[MigrateTarget],
    table: _Table,
    options: MigrateOptions,
    progress: RowProgress,
    reporter: Reporter,
) -> None:
    """The table's rows through `writers` (one connection each), chunks in any order."""
    target = writers[0]
    point = target.checkpoints().get(table.source.name)
    if point is not None and point.finished:
        reporter.info(f"{table.target.qname}: already loaded by an earlier run")
        return
    if point is None:
        target.start_table(table.source.name, table.target.qname)
    hashed = options.verify and (point is None or point.digest is not None)
    after, skip = point.resume_point() if point is not None else (None, ())
    setup = ConvertSetup(
        sqlite_path=options.sqlite_path,
        busy_timeout_ms=options.busy_timeout_ms,
        source=table.source,
        target=table.target,
        archive=table.archive,
        router=table.router,
        hashed=hashed,
        skip=skip,
        chunk_bytes=options.chunk_bytes,
    )
    producer = ChunkProducer(
        source,
        pool,
        setup,
        after_rowid=after,
        chunk_rows=options.chunk_rows,
        ahead=options.converters + 1,
    )
    progress.table(str(table.target.qname))
    failures: list[BaseException] = []
    lock = threading.Lock()

    def write(writer: MigrateTarget) -> None:
        try:
            while not failures:
                chunk = producer.next()
                if chunk is None:
                    return
                _, _, rejects = writer.write_chunk(chunk)
                with lock:
                    progress.advance(chunk.rows)
                    for reject in rejects[:3]:
                        reporter.info(
                            f"rejected {table.source.name} {reject.row_key} column "
                            f"{reject.column}: {reject.reason}"
                        )
                    if len(rejects) > 3:
                        reporter.info(
                            f"... and {len(rejects) - 3} more rejected rows in this chunk"
                        )
        except BaseException as error:
            failures.append(error)
            producer.stop.set()

    producer.start()
    threads = [
        threading.Thread(target=write, args=(w,), name=f"migrate-write-{i}", daemon=True)
        for i, w in enumerate(writers[1:], start=1)
    ]
    try:
        for thread in threads:
            thread.start()
        write(writers[0])
        for thread in threads:
            thread.join()
    finally:
        producer.close()
    if failures:
        raise failures[0]
    target.finish_table(table.source.name)


def _finish_table(
    db: PartitionDatabase,
    connections: list[MigrateTarget],
    table: _Table,
    created: bool,
    now: dt.datetime,
    reporter: Reporter,
) -> None:
    """Sequences; and on a table this migration created, what was left out of the load: the
    primary key, the spec's indexes on its partitions, SQLite's indexes on a plain table."""
    target = connections[0]
    observed = target.observe(table.target.qname)
    serial = [c.name for c in observed.columns if c.serial] if observed else []
    if serial:
        target.execute(
            set_sequences(table.target.qname, table.relations, serial),
            f"setting the sequences of {table.target.qname}",
        )
    if not created:
        return
    started = time.monotonic()
    built = 0
    spec = table.spec if table.spec is not None and table.spec.partitionBy else None
    if defers_primary_key(table.source, replace(table.target, primary_key=table.key)):
        tree = db.observe(request_for([spec]))[spec.name] if spec is not None else None
        first, then = primary_key_statements(
            target,
            table.target.qname,
            tree.relation if tree else None,
            tree.archive if tree else None,
            table.key,
        )
        run_parallel(connections, first)
        for statement in then:
            target.execute(statement.sql, statement.what)
        built += len(first) + len(then)
    if spec is not None and spec.indexes:
        for _ in range(MAX_PARTITION_PASSES):
            observed_table = db.observe(request_for([spec]))[spec.name]
            actions = _partition_actions(table, observed_table, now, db.database)
            if not actions:
                break
            builds, rest = index_builds(actions)
            run_parallel(connections, builds)
            built += len(builds)
            for action in rest:
                try:
                    db.apply(action)
                except ClientError as error:
                    raise MigrateError(f"{table.target.qname}: {error.message}") from error
        else:
            raise MigrateError(
                f"{table.target.qname}: indexes still planned after {MAX_PARTITION_PASSES} passes"
            )
    if table.target.partition_column is None:
        statements = [
            Statement(index_statement(table.target.qname, index), f"creating index {index.name}")
            for index in table.source.indexes
            if not target.relation_exists(QName(table.target.qname.schema, index.name))
        ]
        run_parallel(connections, statements)
        built += len(statements)
    if built:
        reporter.info(
            f"{table.target.qname}: primary key and indexes built after the rows "
            f"({built} statements, {time.monotonic() - started:.1f}s)"
        )


def _foreign_keys(
    target: MigrateTarget, tables: list[_Table], created: set[str], reporter: Reporter
) -> list[str]:
    """SQLite's foreign keys on the tables this run created, added after the rows (so the load
    does not check every row). One that does not hold is reported, not forced."""
    warnings: list[str] = []
    by_source = {t.source.name: t for t in tables}
    for table in tables:
        if table.source.name not in created:
            continue
        for fk in table.source.foreign_keys:
            referenced = by_source.get(fk.table)
            if referenced is None:
                warnings.append(
                    f"{table.target.qname}: foreign key to {fk.table} skipped (no such table)"
                )
                continue
            columns = [
                r if r is not None else (referenced.source.primary_key or ("",))[i]
                for i, r in enumerate(fk.references)
            ]
            name = f"{table.target.qname.name}_{'_'.join(fk.columns)}_fkey"[:63]
            if target.constraint_exists(table.target.qname, name):
                continue
            try:
                target.execute(
                    foreign_key(
                        table.target.qname, name, fk.columns, referenced.target.qname, columns
                    ),
                    f"foreign key {name}",
                )
                reporter.info(f"{table.target.qname}: foreign key {name} added")
            except ClientError as error:
                warnings.append(
                    f"{table.target.qname}: foreign key {name} not added: {error.message}"
                )
    for warning in warnings:
        reporter.info(f"WARNING {warning}")
    return warnings


class _Verification:
    """The verification, on connections of its own in a thread, while keys, indexes and
    foreign keys are built: it only reads rows (COPY TO takes no lock an index build or a
    foreign key check waits for), and the two use different resources (the hashing here,
    sorting on the server)."""

    def __init__(
        self,
        source: SqliteSource,
        options: MigrateOptions,
        tables: list[_Table],
        results: list[TableResult],
        checkpoints: dict[str, Checkpoint],
        reporter: Reporter,
    ) -> None:
        self.error: BaseException | None = None
        self.args = (source, options, tables, results, checkpoints, reporter)
        self.thread = threading.Thread(target=self._run, name="migrate-verify", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        source, options, tables, results, checkpoints, reporter = self.args
        connections: list[MigrateTarget] = []
        try:
            for _ in range(max(options.writers, 1)):
                connections.append(MigrateTarget.open(options.url))
            for table, result in zip(tables, results, strict=True):
                point = checkpoints[table.source.name]
                _verify(source, connections, table, point, result, reporter)
        except BaseException as error:
            self.error = error
        finally:
            for connection in connections:
                connection.close()

    def join(self, *, quiet: bool = False) -> None:
        """Wait for it; its error is raised unless `quiet` (another one is on its way)."""
        self.thread.join()
        if self.error is not None and not quiet:
            raise self.error


def _target_digest(
    connections: list[MigrateTarget], relations: list[QName], columns: list[TargetColumn]
) -> tuple[int, int]:
    """Count and digest over every leaf of `relations`, the leaves (one COPY TO each) shared
    out among the connections."""
    sums = share_out(
        connections, connections[0].leaves(relations), lambda c, leaf: c.digest(leaf, columns)
    )
    return sum(c for c, _ in sums), sum(d for _, d in sums)


def _verify(
    source: SqliteSource,
    connections: list[MigrateTarget],
    table: _Table,
    point: Checkpoint,
    result: TableResult,
    reporter: Reporter,
) -> None:
    target = connections[0]
    expected_digest = point.digest
    if expected_digest is None:
        expected_digest = _source_digest(source, table, target)
    columns = [table.target.column(c.name) for c in table.source.copied]
    count, digest = _target_digest(
        connections, table.relations, [c for c in columns if c is not None]
    )
    problems = []
    if table.rows != point.rows_copied + point.rows_rejected:
        problems.append(
            f"SQLite has {table.rows} rows, {point.rows_copied} copied + {point.rows_rejected} "
            "rejected"
        )
    if count != point.rows_copied:
        problems.append(f"{count} rows in PostgreSQL, {point.rows_copied} copied")
    elif digest != expected_digest:
        problems.append("row digests differ (a value changed on the way)")
    result.verified = not problems
    result.mismatch = "; ".join(problems) or None
    if problems:
        reporter.info(f"VERIFY FAILED {table.target.qname}: {result.mismatch}")
    else:
        shown = digest & 0xFFFFFFFFFFFFFFFF
        reporter.info(f"verified {table.target.qname}: {count} rows, digest {shown:016x}")


def _source_digest(source: SqliteSource, table: _Table, target: MigrateTarget) -> int:
    """The source side's digest recomputed (an earlier run loaded without hashing), skipping
    the rows the rejects table names."""
    refused = target.rejected_rowids(table.source.name)
    converter = RowConverter(table.source, table.target, hashed=True)
    total = 0
    for rows in source.rows(table.source, None):
        block = converter.block([r for r in rows if r[-1] not in refused])
        for route in block.routes.values():
            total += sum(route.hashes)
    return total


def _print_plan(
    db: PartitionDatabase,
    tables: list[_Table],
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
