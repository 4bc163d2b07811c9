"""The SQL of each partition action, as psycopg.sql compositions. No I/O happens here.

Composing psycopg.sql needs no connection, so this sits with the planner and is unit-tested
without a server; clients/postgres/partitions.py only sends what it builds. Every identifier goes
through `sql.Identifier` and every value through `sql.Literal`: nothing from a spec or the catalog
is ever formatted into SQL text.

An action becomes one or more `Step`s. A step either runs in one transaction (the default) or
statement by statement in autocommit (CREATE/DROP INDEX CONCURRENTLY and DETACH ...
CONCURRENTLY refuse to run inside a transaction block). Each transactional step is atomic, so a
crash at any point leaves either the old state or the new one, and the next reconcile sees
which.

Creating a partition when a DEFAULT partition exists: PostgreSQL refuses `CREATE TABLE ...
PARTITION OF` while DEFAULT holds rows of the new range, and takes ACCESS EXCLUSIVE on the parent
(blocking every query) even when it holds none; detaching the DEFAULT to make room would do the
same. Instead, in one transaction: lock the parent and the DEFAULT partition in SHARE ROW
EXCLUSIVE mode (queries go on; writes through the parent wait, because an INSERT that routed
a row to DEFAULT just before the ATTACH would otherwise fail when it writes it just after),
create the partition standalone, move the rows of its range with one `DELETE ... RETURNING`
feeding an `INSERT`, build its indexes while nobody can see it, and ATTACH it. The ATTACH scans
the DEFAULT partition under a brief ACCESS EXCLUSIVE lock to confirm nothing is left behind, but
not the new partition: a bounds CHECK added while it was empty proves its rows fit, and the same
CHECK lets its ATTACH to the archive table skip the scan years later. With an empty DEFAULT this
is milliseconds; with millions of rows waiting in DEFAULT, writes wait for the move (the plan
says how many rows it moves).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from lokifi_storage.domain.partitions.actions import (
    Action,
    ArchivePartition,
    AttachIndex,
    AttachOrphan,
    BuildIndex,
    CreateArchiveTable,
    CreateParentIndex,
    CreatePartition,
    DropInvalidIndex,
    DropPartition,
    ExportPartition,
    FinalizeDetach,
    NewRelation,
)
from lokifi_storage.domain.partitions.catalog import ARCHIVE_MARKER, BOUNDS_CHECK, QName
from lokifi_storage.domain.partitions.index_defs import IndexDef, derived_name, relation_suffix
from lokifi_storage.domain.partitions.statements import (
    CONCURRENT_LOCK_TIMEOUT_MS,
    LIKE_OPTIONS,
    Statement,
    Step,
    drop_leftover_index,
    drop_sql,
    for_values,
    ident,
    index_sql,
    range_predicate,
)

__all__ = ["steps_for"]


def _index_tree(
    table: QName, rel: NewRelation, indexes: Sequence[IndexDef]
) -> list[sql.Composable]:
    """Indexes for a partition being created: plain CREATE INDEX (nobody can see it yet)."""
    out: list[sql.Composable] = []
    for index in indexes:
        out.extend(_index_node(table, rel, index))
    return out


def _index_node(table: QName, rel: NewRelation, index: IndexDef) -> list[sql.Composable]:
    name = derived_name(index.name, relation_suffix(table.name, rel.qname.name))
    if not rel.children:
        return [index_sql(index, name, rel.qname)]
    out: list[sql.Composable] = [index_sql(index, name, rel.qname, only=True)]
    for child in rel.children:
        out.extend(_index_node(table, child, index))
        child_name = derived_name(index.name, relation_suffix(table.name, child.qname.name))
        out.append(
            sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
                sql.Identifier(rel.qname.schema, name),
                sql.Identifier(child.qname.schema, child_name),
            )
        )
    return out


def _create_partition(a: CreatePartition) -> list[Step]:
    """One transaction: the partition made standalone, the rows of its range moved out of
    DEFAULT, its indexes, its ATTACH.

    The parent is locked (see below) only for the part that needs it. With rows waiting in
    DEFAULT the lock comes first and the indexes are built after the move (one build over the
    rows, not one insertion per row). With none expected, the table and its indexes are made
    before the lock: nobody can see them yet, so months made on two connections at once only
    take turns for the lock, the (empty) move and the ATTACH. Rows that arrive in DEFAULT
    meanwhile are still moved under the lock, into the indexed table.
    """
    new = a.partition
    locks: list[Statement] = []
    if a.move_from is not None:
        # An INSERT that routed a row to DEFAULT before the ATTACH below and writes it after
        # fails ("violates partition constraint"): inserts through the parent wait instead.
        # ONLY the parent: a write through it takes its lock there, and locking every
        # partition would cost a lock per partition in each creating transaction (thousands
        # for a sub-partitioned table, past max_locks_per_transaction).
        locks.append(
            sql.SQL("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE").format(ident(a.parent))
        )
        locks.append(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(ident(a.move_from))
        )
    partition_by: sql.Composable = sql.SQL("")
    if new.children:
        partition_by = sql.SQL(" PARTITION BY RANGE ({})").format(
            sql.Identifier(new.sub_column or "")
        )
    bounds_check: sql.Composable = sql.SQL("")
    if not new.bound.is_default:
        # Made with the empty table, so it is valid at no cost; it lets the ATTACH below, and
        # the one to the archive table years later, skip scanning the rows.
        bounds_check = sql.SQL(", CONSTRAINT {} CHECK ({})").format(
            sql.Identifier(BOUNDS_CHECK), range_predicate(a.column, new.bound)
        )
    made: list[Statement] = [
        sql.SQL("CREATE TABLE {} (LIKE {} {}{}){}").format(
            ident(new.qname), ident(a.parent), LIKE_OPTIONS, bounds_check, partition_by
        )
    ]
    for child in new.children:
        made.append(
            sql.SQL("CREATE TABLE {} PARTITION OF {} {}").format(
                ident(child.qname), ident(new.qname), for_values(child.bound)
            )
        )
    moved: list[Statement] = []
    if a.move_from is not None and not new.bound.is_default:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in a.columns)
        moved.append(
            sql.SQL(
                "WITH moved AS (DELETE FROM {src} WHERE {pred} RETURNING {cols}) "
                "INSERT INTO {dst} ({cols}) SELECT {cols} FROM moved"
            ).format(
                src=ident(a.move_from),
                pred=range_predicate(a.column, new.bound),
                cols=cols,
                dst=ident(new.qname),
            )
        )
    indexes: list[Statement] = list(_index_tree(a.table, new, a.indexes))
    attach = sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(
        ident(a.parent), ident(new.qname), for_values(new.bound)
    )
    if a.rows_to_move:
        statements = [*locks, *made, *moved, *indexes, attach]
    else:
        statements = [*made, *indexes, *locks, *moved, attach]
    # A partition lost with its commit in a crash is planned and made again (rows it moved
    # are back in DEFAULT with it); not waiting for each commit's flush is most of the cost
    # of making ten years of months, one transaction each.
    return [Step(tuple(statements), lock_target=a.parent, flush_commit=False)]


def _create_archive_table(a: CreateArchiveTable) -> list[Step]:
    statements: list[Statement] = [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(a.archive.schema)),
        sql.SQL("CREATE TABLE {} (LIKE {} {}) PARTITION BY RANGE ({})").format(
            ident(a.archive), ident(a.source), LIKE_OPTIONS, sql.Identifier(a.column)
        ),
    ]
    statements.extend(index_sql(index, index.name, a.archive) for index in a.indexes)
    return [Step(tuple(statements), lock_target=a.source)]


def _move_schema(names: Sequence[QName], schema: str) -> list[Statement]:
    return [
        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(ident(n), sql.Identifier(schema))
        for n in names
        if n.schema != schema
    ]


def _archive(a: ArchivePartition) -> list[Step]:
    steps: list[Step] = []
    if a.leaves_needing_check:
        steps.append(
            Step(
                tuple(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({}) NOT VALID").format(
                        ident(leaf),
                        sql.Identifier(BOUNDS_CHECK),
                        range_predicate(a.column, a.bound),
                    )
                    for leaf in a.leaves_needing_check
                ),
                lock_target=a.partition,
            )
        )
    if a.leaves_to_validate:
        # Validation scans each leaf under SHARE UPDATE EXCLUSIVE: reads and writes go on.
        steps.append(
            Step(
                tuple(
                    sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                        ident(leaf), sql.Identifier(BOUNDS_CHECK)
                    )
                    for leaf in a.leaves_to_validate
                ),
                transaction=False,
                lock_target=a.partition,
                lock_timeout_ms=CONCURRENT_LOCK_TIMEOUT_MS,
            )
        )
    moved = QName(a.archive.schema, a.partition.name)
    attach: list[Statement] = [
        *_move_schema([a.partition, *a.descendants], a.archive.schema),
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(
            ident(a.archive), ident(moved), for_values(a.bound)
        ),
    ]
    detach = sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
        ident(a.parent), ident(a.partition)
    )
    if a.concurrently:
        # Two transactions inside; a crash between them leaves "detach pending", which the
        # planner finalizes. A crash after it leaves an orphan, which the planner attaches
        # because it carries the marker set here first (a table someone else detached has none).
        if not a.marked:
            steps.append(Step((_add_marker(a.partition),), lock_target=a.partition))
        attach.append(_drop_marker(moved))
        steps.append(
            Step(
                (sql.SQL("{} CONCURRENTLY").format(detach),),
                transaction=False,
                lock_target=a.parent,
                lock_timeout_ms=CONCURRENT_LOCK_TIMEOUT_MS,
            )
        )
        steps.append(Step(tuple(attach), lock_target=a.archive))
    else:
        # Plain DETACH takes ACCESS EXCLUSIVE on the parent: short, under lock_timeout, and in
        # the same transaction as the ATTACH so the rows are always in exactly one table.
        steps.append(Step((detach, *attach), lock_target=a.parent))
    return steps


def _add_marker(table: QName) -> sql.Composable:
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (true) NOT VALID").format(
        ident(table), sql.Identifier(ARCHIVE_MARKER)
    )


def _drop_marker(table: QName) -> sql.Composable:
    return sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
        ident(table), sql.Identifier(ARCHIVE_MARKER)
    )


def _attach_orphan(a: AttachOrphan) -> list[Step]:
    moved = QName(a.archive.schema, a.orphan.name)
    statements: list[Statement] = [
        *_move_schema([a.orphan, *a.descendants], a.archive.schema),
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(
            ident(a.archive), ident(moved), for_values(a.bound)
        ),
        _drop_marker(moved),
    ]
    return [Step(tuple(statements), lock_target=a.archive)]


def steps_for(action: Action) -> list[Step]:
    """The SQL steps of one action, in order."""
    if isinstance(action, CreatePartition):
        return _create_partition(action)
    if isinstance(action, CreateArchiveTable):
        return _create_archive_table(action)
    if isinstance(action, CreateParentIndex):
        stmt = index_sql(action.index, action.name, action.relation, only=True)
        return [Step((stmt,), lock_target=action.relation)]
    if isinstance(action, BuildIndex):
        name = QName(action.relation.schema, action.name)
        return [
            Step(
                (index_sql(action.index, action.name, action.relation, concurrently=True),),
                transaction=False,
                lock_target=action.relation,
                # Only what this build left: PostgreSQL's "already exists" skips the cleanup
                # (the client), and the guard spares a valid index or one still being built.
                cleanup=drop_leftover_index(name),
                lock_timeout_ms=CONCURRENT_LOCK_TIMEOUT_MS,
            )
        ]
    if isinstance(action, DropInvalidIndex):
        return [
            Step(
                drop_leftover_index(action.index),
                transaction=False,
                lock_timeout_ms=CONCURRENT_LOCK_TIMEOUT_MS,
            )
        ]
    if isinstance(action, AttachIndex):
        stmt = sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
            ident(action.parent_index), ident(action.child_index)
        )
        return [Step((stmt,), lock_target=action.parent_index)]
    if isinstance(action, FinalizeDetach):
        stmt = sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(
            ident(action.parent), ident(action.partition)
        )
        return [Step((stmt,), transaction=False, lock_target=action.parent)]
    if isinstance(action, ArchivePartition):
        return _archive(action)
    if isinstance(action, AttachOrphan):
        return _attach_orphan(action)
    if isinstance(action, DropPartition | ExportPartition):
        # An ExportPartition's SQL is its final drop; the export job runs it only after the
        # exported object is verified.
        return [Step((drop_sql(action.partition),), lock_target=action.parent)]
    raise TypeError(f"no SQL for {type(action).__name__}")
