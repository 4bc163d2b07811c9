"""Step 4 of `migrate sqlite`, after the rows: sequences set past the loaded maximum and, on the
tables this run created, the primary key and the declared indexes (left out of steps 2-3 when
that is safe, jobs/migrate_keys.py), SQLite's indexes and foreign keys.

Apart from the run (jobs/migrate_run.py) because it only builds on rows already committed: it
runs while the verification (jobs/migrate_verify.py) reads them on connections of its own.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace

from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.migrate_sql import foreign_key, index_statement, set_sequences
from lokifi_storage.clients.migrate_target import MigrateTarget
from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.jobs.migrate_keys import (
    Statement,
    defers_primary_key,
    index_builds,
    primary_key_statements,
    run_parallel,
)
from lokifi_storage.jobs.migrate_options import MAX_PARTITION_PASSES, DecidedTable, MigrateError
from lokifi_storage.jobs.migrate_partitions import partition_actions
from lokifi_storage.jobs.progress import Reporter

__all__ = ["finish_table", "foreign_keys"]


def finish_table(
    db: PartitionDatabase,
    connections: list[MigrateTarget],
    table: DecidedTable,
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
            actions = partition_actions(table, observed_table, now, db.database)
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


def foreign_keys(
    target: MigrateTarget, tables: list[DecidedTable], created: set[str], reporter: Reporter
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
