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

This module strings the steps together and runs step 3, the load; steps 1, 2, 4 and 5 are
jobs/migrate_checks.py, migrate_partitions.py, migrate_finish.py and migrate_verify.py, and what
they share (options, exit codes, results) is jobs/migrate_options.py.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import Executor

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.migrate_sql import create_table
from lokifi_storage.clients.migrate_target import MigrateTarget
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.clients.sqlite_copy import available as compiled_reader_available
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.jobs.migrate_checks import (
    IntegrityCheck,
    decide,
    open_source,
    source_error,
    source_tables,
)
from lokifi_storage.jobs.migrate_chunks import (
    ChunkProducer,
    ConvertSetup,
    close_sources,
    conversion_pool,
)
from lokifi_storage.jobs.migrate_finish import finish_table, foreign_keys
from lokifi_storage.jobs.migrate_keys import defers_primary_key
from lokifi_storage.jobs.migrate_options import (
    DecidedTable,
    MigrateOptions,
    MigrateSummary,
    TableResult,
)
from lokifi_storage.jobs.migrate_partitions import make_partitions, print_plan
from lokifi_storage.jobs.migrate_progress import RowProgress
from lokifi_storage.jobs.migrate_verify import Verification
from lokifi_storage.jobs.progress import Reporter

__all__ = ["run_migrate"]


def run_migrate(options: MigrateOptions, reporter: Reporter) -> MigrateSummary:
    started = time.monotonic()
    now = options.now or dt.datetime.now(dt.UTC)
    summary = MigrateSummary()
    source = open_source(options)
    integrity = IntegrityCheck(options)
    try:
        tables = source_tables(source, options.tables)
        target = MigrateTarget.open(options.url, options.toast_compression)
        try:
            checkpoints = target.checkpoints()
            decided = decide(source, target, tables, options.tables, checkpoints)
            integrity.result()
            with open_partition_database(options.url) as db:
                # Nobody uses the tables yet: DDL need not wait for its WAL flush (a crash
                # loses at most the last steps, which the next run plans again).
                db.conn.execute("SET synchronous_commit = off")
                if options.dry_run:
                    print_plan(db, decided, checkpoints, now, reporter)
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
                        make_partitions(db, table, now, reporter)
            total = sum(t.rows for t in decided)
            done = sum(c.rows_copied + c.rows_rejected for c in checkpoints.values())
            writers = [target] + [
                MigrateTarget.open(options.url, options.toast_compression)
                for _ in range(options.writers - 1)
            ]
            try:
                pool = conversion_pool(options.converters)
                reporter.info(
                    "converting with the compiled reader (the Python converters for other values)"
                    if compiled_reader_available()
                    else "converting with the Python converters (the compiled reader is not built"
                    " or LOKIFI_MIGRATE_COMPILED=0)"
                )
                try:
                    with RowProgress(reporter, total, done) as progress:
                        for table in decided:
                            _load(source, pool, writers, table, options, progress, reporter)
                finally:
                    pool.shutdown(wait=False, cancel_futures=True)
                    close_sources()
                checkpoints = target.checkpoints()
                verification = (
                    Verification(source, options, decided, summary.tables, checkpoints, reporter)
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
                            finish_table(db, writers, table, point.created, now, reporter)
                    created_now = {r.source for r in summary.tables if r.created}
                    summary.warnings.extend(foreign_keys(target, decided, created_now, reporter))
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
        raise source_error(error) from error
    finally:
        source.close()
    summary.seconds = time.monotonic() - started
    return summary


def _load(
    source: SqliteSource,
    pool: Executor,
    writers: list[MigrateTarget],
    table: DecidedTable,
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
    gaps = point.gaps() if point is not None else ((None, None),)
    setup = ConvertSetup(
        sqlite_path=options.sqlite_path,
        busy_timeout_ms=options.busy_timeout_ms,
        source=table.source,
        target=table.target,
        archive=table.archive,
        router=table.router,
        hashed=hashed,
        chunk_bytes=options.chunk_bytes,
    )
    producer = ChunkProducer(
        source,
        pool,
        setup,
        gaps=gaps,
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
