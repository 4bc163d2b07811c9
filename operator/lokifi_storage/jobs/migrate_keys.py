"""Primary keys and declared indexes of the tables `migrate sqlite` creates, built after the rows.

A b-tree kept up to date row by row during COPY costs the server several times what one build
from the finished heap costs (a sort, then a sequential write), and the build of each leaf
partition is independent of the others, so they are spread over a few connections.

Only tables this migration created are treated so (an existing table is the app's, and keeps the
keys it has). A primary key is deferred only when it is SQLite's rowid alias (INTEGER PRIMARY
KEY), alone or followed by partition columns: SQLite guarantees those values unique and the
integer conversion keeps them apart, so building the key afterwards cannot fail on the data.
Any other key stays in the CREATE TABLE, where a duplicate is refused row by row (and rejected)
instead of failing the whole run at the end.

Every step looks at the catalog first, so a run killed half way through the builds does only
what is still missing when it is run again. Names are the ones the operator itself would give:
leaf primary keys as PostgreSQL names a partition's inherited key (`<partition>_pkey`), the
spec's indexes as the partition planner names them (its actions are followed, only each leaf's
CREATE INDEX is run without CONCURRENTLY, since nobody else uses the table yet).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from psycopg import sql

from lokifi_storage.clients.migrate_sql import add_primary_key
from lokifi_storage.clients.migrate_target import MigrateTarget
from lokifi_storage.domain.migrate_schema import SourceTable, TargetTable
from lokifi_storage.domain.partitions.actions import Action, BuildIndex
from lokifi_storage.domain.partitions.catalog import ObservedRelation, QName
from lokifi_storage.domain.partitions.statements import index_sql

__all__ = [
    "Statement",
    "defers_primary_key",
    "index_builds",
    "primary_key_statements",
    "run_parallel",
    "share_out",
]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Statement:
    sql: sql.Composed
    what: str


def defers_primary_key(source: SourceTable, planned: TargetTable) -> bool:
    """True when the key of `planned` can only be unique: SQLite's rowid alias first."""
    alias = source.rowid_alias
    return alias is not None and planned.primary_key[:1] == (alias,)


def primary_key_statements(
    target: MigrateTarget,
    table: QName,
    tree: ObservedRelation | None,
    archive: ObservedRelation | None,
    key: Sequence[str],
) -> tuple[list[Statement], list[Statement]]:
    """(independent leaf builds, then the statements that attach them), skipping what exists.

    ADD PRIMARY KEY on a partitioned table adopts each partition's own primary key, so once
    every leaf has one the parent's statement only links them. The archive table has no key of
    its own (the operator creates it without one), so each archived month gets its own, as a
    month keeps the key it had when the reconciler moves it there."""
    relations: list[QName] = [table]
    leaves: list[QName] = []
    months: list[QName] = []
    for root in (tree, archive):
        if root is None:
            continue
        if root.partitioned:
            leaves.extend(leaf.qname for leaf in root.leaves())
        if root is archive:
            months.extend(c.qname for c in root.children if c.partitioned)
    relations.extend(leaves + months)
    keyed = target.primary_keyed(relations)
    first = [
        Statement(add_primary_key(leaf, key), f"primary key of {leaf}")
        for leaf in leaves
        if leaf not in keyed
    ]
    then = [
        Statement(add_primary_key(relation, key), f"primary key of {relation}")
        for relation in [*months, table]
        if relation not in keyed
    ]
    return first, then


def index_builds(actions: Sequence[Action]) -> tuple[list[Statement], list[Action]]:
    """The planner's leaf builds as plain CREATE INDEX (run in parallel), and the rest of its
    actions (parent indexes ON ONLY, ATTACHes) to apply after them, in its order."""
    builds = [
        Statement(
            sql.Composed([index_sql(a.index, a.name, a.relation)]),
            f"index {a.name} on {a.relation}",
        )
        for a in actions
        if isinstance(a, BuildIndex)
    ]
    return builds, [a for a in actions if not isinstance(a, BuildIndex)]


def share_out(
    connections: Sequence[MigrateTarget],
    items: Sequence[T],
    do: Callable[[MigrateTarget, T], R],
) -> list[R]:
    """`do(connection, item)` for each item, on whichever connection is free (one thread per
    connection); the first error is raised once the others stop taking work."""
    pending = list(reversed(items))
    results: list[R] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(connection: MigrateTarget) -> None:
        while True:
            with lock:
                if failures or not pending:
                    return
                item = pending.pop()
            try:
                result = do(connection, item)
            except BaseException as error:
                with lock:
                    failures.append(error)
                return
            with lock:
                results.append(result)

    threads = [
        threading.Thread(target=work, args=(c,), name=f"migrate-share-{i}", daemon=True)
        for i, c in enumerate(connections[1:], start=1)
    ]
    for thread in threads:
        thread.start()
    work(connections[0])
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


def run_parallel(connections: Sequence[MigrateTarget], statements: Sequence[Statement]) -> None:
    share_out(connections, statements, lambda c, s: c.execute(s.sql, s.what))
