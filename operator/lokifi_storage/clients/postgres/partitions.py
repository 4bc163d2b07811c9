"""The partition client: observes managed tables and executes partition actions on the primary.

How statements are sent (the record of `statements` and `writes`, `lock_timeout` and retries of
each step) is clients/postgres/partition_session.py; this module adds what the operator and the
jobs ask of the primary on top of it: the partition-work lock of a table, the observation of
managed tables through the catalog (cached while its fingerprint is unchanged), the claims
recorded in table comments, and the reads and locked snapshots of exports.

Messages are built from host, port, database and relation names only: never the URL.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError, LockTimeout, PartitionWorkBusy
from lokifi_storage.clients.postgres.catalog_cache import CATALOG_CACHE
from lokifi_storage.clients.postgres.connection import (
    Target,
    pooled_autocommit,
    spare_autocommit,
    translate,
    translated,
)
from lokifi_storage.clients.postgres.partition_session import PartitionSession
from lokifi_storage.domain.partitions.catalog import ObservedTable, QName
from lokifi_storage.domain.partitions.catalog_query import (
    CATALOG_QUERY,
    FINGERPRINT_QUERY,
    CatalogRequest,
    bucket_queries,
)
from lokifi_storage.domain.partitions.catalog_rows import assemble, bucket_rows, build_trees
from lokifi_storage.domain.partitions.statements import Step

__all__ = [
    "PARTITION_LOCK_CLASS",
    "PartitionDatabase",
    "open_partition_database",
]

OBSERVE_STATEMENT_TIMEOUT_MS = 60_000


# The first half of the two-key advisory lock of partition work ('LKSP'); the second half is
# hashtext('<schema>.<table>').
PARTITION_LOCK_CLASS = 0x4C4B5350
#: how often a job waiting for a table's partition-work lock tries again
LOCK_POLL_SECONDS = 0.5


class PartitionDatabase(PartitionSession):
    """The partition client: one connection to the primary for the length of a reconcile or a
    job, and (partition_pair.py) spare ones while months are made several at a time."""

    def __init__(self, conn: psycopg.Connection[Any], target: Target, **options: Any) -> None:
        super().__init__(conn, target, **options)
        self.options = options
        self.helpers: list[PartitionDatabase] = []  # sessions working for this one right now
        # Another session on a spare connection, or None (none free; a job's own connection).
        self.spare_session: Callable[[], AbstractContextManager[PartitionDatabase | None]] = (
            lambda: nullcontext(None)
        )

    def session_settings(self) -> None:
        """TimeZone UTC, the default lock_timeout, JIT off and generic plans (see
        open_partition_database), in one round trip."""
        self._execute(
            sql.SQL(
                "SET TimeZone = 'UTC'; SET lock_timeout = {}; SET jit = off;"
                " SET plan_cache_mode = force_generic_plan"
            ).format(sql.Literal(f"{self.lock_timeout_ms}ms"))
        )

    # -- who may write ------------------------------------------------------------------------

    @contextmanager
    def table_lock(self, table: QName, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold the partition-work lock of `table` for the block, or raise PartitionWorkBusy.

        A session-level advisory lock on the primary, taken by the operator's reconcile and by
        the compress/export jobs alike, so two writers (two operators, a job and a reconcile, a
        job started twice) never plan and change one table's partitions at once. The operator
        does not wait (whoever finds it taken reports whose it is and tries again on its next
        pass); a job waits up to `wait_seconds` first, polling, since a Job that gives up fails
        and is retried by its controller: the usual holder is a reconcile pass of a few
        seconds, or the server session of a killed run that lives until its statement ends.
        """
        key = {"table": str(table)}
        deadline = time.monotonic() + wait_seconds
        while not self._try_table_lock(key):
            if time.monotonic() >= deadline:
                waited = f" (waited {wait_seconds:g} s)" if wait_seconds else ""
                raise PartitionWorkBusy(
                    f"{table}: another session holds its partition-work lock"
                    f"{self._advisory_holders(str(table))}{waited}; nothing was changed,"
                    " retried later"
                )
            time.sleep(min(LOCK_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        try:
            yield
        finally:
            with suppress(psycopg.Error):
                self._execute(
                    f"SELECT pg_advisory_unlock({PARTITION_LOCK_CLASS}, hashtext(%(table)s))", key
                )

    def _try_table_lock(self, key: dict[str, str]) -> bool:
        row = self._execute(
            f"SELECT pg_try_advisory_lock({PARTITION_LOCK_CLASS}, hashtext(%(table)s))", key
        ).fetchone()
        return bool(row and row[0] is True)

    def _advisory_holders(self, table: str) -> str:
        try:
            rows = self.query(
                "SELECT a.pid, a.usename, a.application_name, a.client_addr::text"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                f" AND l.classid = {PARTITION_LOCK_CLASS}::oid"
                " AND l.objid = (hashtext(%(table)s)::bigint & 4294967295)::text::oid"
                " AND l.database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())",
                {"table": table},
            )
        except ClientError:
            return ""
        return "".join(
            f" (pid {pid}, user {user}, application {app or '-'}, from {addr or 'local socket'})"
            for pid, user, app, addr in rows
        )

    def server_now(self) -> dt.datetime:
        """The database server's clock: the one every age of a partition is measured by."""
        rows = self.query("SELECT now()")
        moment: dt.datetime = rows[0][0]
        return moment

    def cancel(self) -> None:
        """Cancel the statement running on this connection and its helpers' (from another
        thread)."""
        with suppress(psycopg.Error):
            self.conn.cancel_safe()
        for helper in list(self.helpers):
            helper.cancel()

    # -- observation --------------------------------------------------------------------------

    def observe(self, request: CatalogRequest, *, seed: bool = True) -> dict[str, ObservedTable]:
        """The catalog's trees (reused while the fingerprint is unchanged, see
        CatalogCache), then exact DEFAULT counts where the DEFAULT has pages.

        `seed=False`: when no trees are kept for this request, the catalog query alone, and
        nothing kept: the fingerprint could only miss, and a look that is about to be
        followed by changes (a new table's first look, under its lock) would keep trees that
        are stale at once. The look after the changes seeds the cache."""
        key = (str(self.target), repr(sorted(request.params().items())))
        if not seed and not CATALOG_CACHE.has(key):
            trees = build_trees(self._catalog_rows(CATALOG_QUERY, request))
        else:
            fingerprint = self._catalog_rows(FINGERPRINT_QUERY, request)[0]
            seen = (int(fingerprint["count"]), repr(fingerprint["hashes"]))
            cached = CATALOG_CACHE.get(key, seen)
            if cached is None:
                trees = build_trees(self._catalog_rows(CATALOG_QUERY, request))
                CATALOG_CACHE.put(key, seen, trees)
            else:
                trees = cached
        buckets = {
            name: bucket_rows(self.query(query))
            for name, query in bucket_queries(request, trees).items()
        }
        return assemble(request, trees, buckets)

    def _catalog_rows(self, query: sql.SQL, request: CatalogRequest) -> list[dict[str, Any]]:
        """One of the two catalog statements, prepared: its text is the same for every
        request, so each connection plans it once (a generic plan, see open_partition_database)
        and every table, new or known, reuses that plan."""
        with (
            translated(self.where, "catalog query", reason=Reason.PARTITION_ACTION_FAILED),
            self.conn.cursor(row_factory=dict_row) as cur,
        ):
            self.statements.append(self._text(query))
            return cur.execute(query, request.params(), prepare=True).fetchall()

    # -- claims (domain/claims.py) ------------------------------------------------------------

    def set_table_comment(self, table: QName, text: str | None) -> None:
        """COMMENT ON TABLE: where the claim on a managed table is recorded."""
        statement = sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(table.schema, table.name),
            sql.Literal(text) if text is not None else sql.SQL("NULL"),
        )
        self.run_step(
            Step(statements=(statement,), lock_target=table), f"record the claim on {table}"
        )

    def claimed_tables(self, uid: str) -> dict[QName, str]:
        """Tables whose comment records a claim of the resource `uid`, with their comment."""
        rows = self.query(
            "SELECT n.nspname, c.relname, d.description FROM pg_description d"
            " JOIN pg_class c ON c.oid = d.objoid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0"
            " AND strpos(d.description, %(marker)s) > 0",
            {"marker": f" uid={uid} "},
        )
        return {QName(str(schema), str(name)): str(text) for schema, name, text in rows}

    # -- data ---------------------------------------------------------------------------------

    def count_rows(self, relation: QName) -> int:
        rows = self.query(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*_parts(relation)))
        )
        return int(rows[0][0])

    def relation_bytes(self, relation: QName) -> int:
        """Heap, TOAST and indexes of `relation` and, when partitioned, of all its partitions."""
        rows = self.query(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint"
            " FROM pg_partition_tree(%(rel)s::regclass)",
            {"rel": sql.Identifier(relation.schema, relation.name).as_string(self.conn)},
        )
        return int(rows[0][0])

    @contextmanager
    def locked_snapshot(self, relation: QName) -> Iterator[None]:
        """One REPEATABLE READ transaction in which `relation` cannot be written.

        SHARE mode lets readers through and keeps writers out until the transaction ends, so
        every read inside sees exactly the rows a DROP at its end would remove. Synchronized
        scans are off, so two COPYs of the table stream the rows in the same order.
        """
        try:
            with self.conn.transaction():
                self._execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                self._execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(
                        sql.Literal(f"{self.lock_timeout_ms}ms")
                    )
                )
                self._execute("SET LOCAL synchronize_seqscans = off")
                self._execute(
                    sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                        sql.Identifier(relation.schema, relation.name)
                    ),
                    write=True,
                )
                yield
        except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected) as error:
            raise LockTimeout(
                f"{relation}: lock not granted within {self.lock_timeout_ms} ms"
                f"{self._holders(relation)}"
            ) from error
        except psycopg.Error as error:
            raise translate(
                error, self.where, f"snapshot of {relation}", reason=Reason.PARTITION_ACTION_FAILED
            ) from error

    def write_now(self, statement: sql.Composable) -> None:
        """One changing statement in its own transaction, errors mapped (a kept export's mark)."""
        with (
            translated(self.where, "write", reason=Reason.PARTITION_ACTION_FAILED),
            self.conn.transaction(),
        ):
            self._execute(statement, write=True)

    def execute_write(self, statement: sql.Composable) -> None:
        """One changing statement in the current transaction (errors map in the caller's
        `locked_snapshot`)."""
        self._execute(statement, write=True)

    def copy_out(self, statement: sql.Composable) -> Iterator[bytes]:
        """Stream `COPY ... TO STDOUT` in the chunks the server sends."""
        text = self._text(statement)
        self.statements.append(text)
        self.last_copy_rows = 0
        with (
            translated(self.where, "COPY", reason=Reason.EXPORT_FAILED),
            self.conn.cursor() as cur,
        ):
            with cur.copy(text) as copy:
                for chunk in copy:
                    yield bytes(chunk)
            self.last_copy_rows = max(cur.rowcount, 0)


def _parts(q: QName) -> tuple[str, str]:
    return q.schema, q.name


@contextmanager
def open_partition_database(url: str, **options: Any) -> Iterator[PartitionDatabase]:
    """A connection to the primary (shared, pool.py) in autocommit, TimeZone UTC, JIT off,
    generic plans; raise the clients' error tree.

    JIT off: the planner cannot know that the recursive walk of a managed table finds a dozen
    relations, guesses thousands, and above `jit_above_cost` compiles the catalog query and
    the fingerprint with LLVM at every execution: ~40-180 ms of compiling for a ~5 ms query
    (measured on PostgreSQL 15, whose default is `jit = on`), which made the catalog the
    bulk of a new resource's first pass.

    Generic plans (`plan_cache_mode = force_generic_plan`): planning the catalog query costs
    more than running it for a table of a dozen relations, and with custom plans PostgreSQL
    plans a prepared statement again at each of its first executions and then, since the
    generic plan's guessed cost is higher, at every one. The two catalog statements are
    prepared with parameters (`_catalog_rows`), so one generic plan per connection serves
    every table (measured on 300 tables: 2-3 ms instead of 5-8 ms for the catalog query,
    2 ms instead of 5 ms for a table's first fingerprint; about equal at 600 partitions).
    The other statements of the session are lookups whose plan does not depend on the
    values.

    Set per session, not in the startup packet's `options`, which connection poolers such as
    PgBouncer refuse for settings they do not track; the pool's `RESET ALL` drops them when
    the connection goes back. The four settings go in one round trip."""
    with pooled_autocommit(url, "primary") as (conn, target):
        db = PartitionDatabase(conn, target, **options)
        db.session_settings()
        db.spare_session = lambda: _spare_session(url, db)
        yield db


@contextmanager
def _spare_session(url: str, db: PartitionDatabase) -> Iterator[PartitionDatabase | None]:
    """Another session like `db` on a spare pooled connection, or None if none is free."""
    with spare_autocommit(url, "primary") as taken:
        if taken is None:
            yield None
            return
        helper = PartitionDatabase(taken[0], taken[1], **db.options)
        helper.sleep = db.sleep
        helper.before_write = db.before_write
        helper.session_settings()
        yield helper
