"""The partition client: observes managed tables and executes partition actions on the primary.

Every statement goes through `PartitionDatabase._execute`, which records its text in
`statements`; `writes` is the subset sent by action steps (DDL, DML, LOCK), never the reads
of observation or the session's SET commands. That record is how tests prove a reconcile with
nothing to do sends no DDL, and how `plan` proves it only reads.

Locking: each step sets `lock_timeout` (short for DDL that blocks traffic, long for
CONCURRENTLY work that does not) and is retried with exponential backoff when a lock is not
granted in time or a deadlock is detected. When a step keeps timing out, the error names the
sessions holding locks on the relation (pid, user, application, state, transaction age), never
their query text, which could carry secrets.

Messages are built from host, port, database and relation names only: never the URL.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq, sql
from psycopg.rows import dict_row

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError, LockTimeout, PartitionWorkBusy
from lokifi_storage.clients.postgres.catalog_cache import CATALOG_CACHE
from lokifi_storage.clients.postgres.connection import (
    Target,
    pooled_autocommit,
    translate,
    translated,
)
from lokifi_storage.domain.partitions.actions import Action
from lokifi_storage.domain.partitions.catalog import ObservedTable, QName
from lokifi_storage.domain.partitions.catalog_query import (
    CATALOG_QUERY,
    FINGERPRINT_QUERY,
    CatalogRequest,
    bucket_queries,
)
from lokifi_storage.domain.partitions.catalog_rows import assemble, bucket_rows, build_trees
from lokifi_storage.domain.partitions.statements import Check, Guard, Statement, Step
from lokifi_storage.domain.partitions.steps import steps_for

__all__ = [
    "PARTITION_LOCK_CLASS",
    "PartitionDatabase",
    "open_partition_database",
]

DEFAULT_LOCK_TIMEOUT_MS = 2_000
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 0.5
OBSERVE_STATEMENT_TIMEOUT_MS = 60_000

Conn = psycopg.Connection[Any]


# The first half of the two-key advisory lock of partition work ('LKSP'); the second half is
# hashtext('<schema>.<table>').
PARTITION_LOCK_CLASS = 0x4C4B5350


class PartitionDatabase:
    """One connection to the primary for the length of a reconcile or a job."""

    def __init__(
        self,
        conn: Conn,
        target: Target,
        *,
        lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conn = conn
        self.target = target
        self.lock_timeout_ms = lock_timeout_ms
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.statements: list[str] = []
        self.writes: list[str] = []  # the statements of action steps: DDL, DML, LOCK
        self.last_copy_rows = 0  # rows of the last COPY ... TO STDOUT, as the server counted
        self._system_identifier: str | None = None
        # Called with each write's text before it is sent (the leader's fence): a process
        # paused mid-step must not send the step's next statement once its Lease is gone.
        self.before_write: Callable[[str], None] | None = None

    @property
    def database(self) -> str:
        return self.target.dbname

    @property
    def where(self) -> str:
        """How messages name this connection (never with its password)."""
        return f"primary {self.target}"

    def system_identifier(self) -> str:
        """The cluster's id from pg_control_system(): fixed at initdb, shared by its
        streaming replicas, different on any other server."""
        if self._system_identifier is None:
            rows = self.query("SELECT system_identifier::text FROM pg_control_system()")
            self._system_identifier = str(rows[0][0])
        return self._system_identifier

    # -- execution ----------------------------------------------------------------------------

    def _text(self, statement: sql.Composable | str) -> str:
        return statement if isinstance(statement, str) else statement.as_string(self.conn)

    def _execute(
        self,
        statement: sql.Composable | str,
        params: dict[str, Any] | None = None,
        *,
        write: bool = False,
    ) -> psycopg.Cursor[Any]:
        text = self._text(statement)
        self.statements.append(text)
        if write:
            if self.before_write is not None:
                self.before_write(text)
            self.writes.append(text)
        return self.conn.execute(text, params)

    def query(
        self, statement: sql.Composable | str, params: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """A read-only query; maps driver errors to the clients' error tree."""
        with translated(self.where, "query", reason=Reason.PARTITION_ACTION_FAILED):
            return list(self._execute(statement, params).fetchall())

    def _set_lock_timeout(self, milliseconds: int, *, local: bool) -> None:
        self._execute(
            sql.SQL("SET {}lock_timeout = {}").format(
                sql.SQL("LOCAL ") if local else sql.SQL(""), sql.Literal(f"{milliseconds}ms")
            )
        )

    def _run(self, statement: Statement) -> bool:
        """Run one statement; False when a Guard says the rest of the step is not to run."""
        if isinstance(statement, Guard):
            row = self._execute(statement.query).fetchone()
            return bool(row and row[0] is True)
        if isinstance(statement, Check):
            row = self._execute(statement.query).fetchone()
            if not row or row[0] is not True:
                raise ClientError(statement.message, reason=Reason.PARTITION_ACTION_FAILED)
            return True
        self._execute(statement, write=True)
        return True

    def _run_all(self, statements: Sequence[Statement]) -> None:
        for statement in statements:
            if not self._run(statement):
                return

    def _run_batch(self, step: Step, timeout_ms: int) -> None:
        """A transactional step of plain statements in one round trip: BEGIN, the settings,
        the statements and COMMIT as one simple query. The server stops at the first error,
        leaving the transaction aborted; it is rolled back here, so nothing of it remains.
        Every statement passes the fence before any is sent, as the COMMIT does."""
        settings: list[sql.Composable] = [
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{timeout_ms}ms")),
        ]
        if not step.flush_commit:
            settings.append(sql.SQL("SET LOCAL synchronous_commit = off"))
        texts = [self._text(s) for s in step.statements if isinstance(s, sql.Composable)]
        if self.before_write is not None:
            for text in texts:
                self.before_write(text)
            self.before_write("COMMIT")  # refused: nothing of the step is sent
        head = [self._text(s) for s in settings]
        self.statements.extend([*head, *texts])
        self.writes.extend(texts)
        try:
            self.conn.execute(";\n".join(["BEGIN", *head, *texts, "COMMIT"]), prepare=False)
        except BaseException:
            if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
                with suppress(psycopg.Error):
                    self.conn.execute("ROLLBACK")
            raise

    def run_step(self, step: Step, what: str) -> None:
        """Run one step with lock_timeout and retries; raise the clients' error tree."""
        timeout = step.lock_timeout_ms or self.lock_timeout_ms
        batch = step.transaction and all(isinstance(s, sql.Composable) for s in step.statements)
        for attempt in range(1, self.attempts + 1):
            try:
                if batch:
                    self._run_batch(step, timeout)
                elif step.transaction:
                    with self.conn.transaction():
                        self._set_lock_timeout(timeout, local=True)
                        self._run_all(step.statements)
                        if self.before_write is not None:
                            self.before_write("COMMIT")  # refused: the step rolls back whole
                else:
                    self._set_lock_timeout(timeout, local=False)
                    try:
                        self._run_all(step.statements)
                    finally:
                        self._set_lock_timeout(self.lock_timeout_ms, local=False)
                return
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected) as error:
                self._cleanup(step)
                if attempt == self.attempts:
                    raise LockTimeout(
                        f"{what}: locks not granted within {timeout} ms in {attempt} attempts"
                        f"{self._holders(step.lock_target)}"
                    ) from error
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            except psycopg.Error as error:
                # "Already exists": this step created nothing, so there is nothing of its own
                # to clean up (what exists belongs to whoever made it); a lost connection has
                # nothing to clean up with.
                if not isinstance(
                    error,
                    psycopg.OperationalError | pg_errors.DuplicateTable | pg_errors.DuplicateObject,
                ):
                    self._cleanup(step)
                raise translate(
                    error, self.where, what, reason=Reason.PARTITION_ACTION_FAILED
                ) from error
            except ClientError:
                self._cleanup(step)
                raise

    def _cleanup(self, step: Step) -> None:
        # Best effort: whatever is left, the planner sees and repairs next time.
        with suppress(psycopg.Error):
            self._run_all(step.cleanup)

    def _holders(self, target: QName | None) -> str:
        if target is None:
            return ""
        try:
            rows = self.query(
                "SELECT DISTINCT l.pid, a.usename, a.application_name, a.state,"
                " extract(epoch FROM now() - a.xact_start)::int"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " JOIN pg_class c ON c.oid = l.relation"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %(schema)s AND c.relname = %(name)s"
                " AND l.granted AND l.pid <> pg_backend_pid() ORDER BY 1",
                {"schema": target.schema, "name": target.name},
            )
        except ClientError:
            return ""
        if not rows:
            return f"; no session holds a lock on {target} now"
        sessions = ", ".join(
            f"pid {pid} (user {user}, application {app or '-'}, {state or '?'}"
            + (f", transaction open {age} s)" if age is not None else ")")
            for pid, user, app, state, age in rows
        )
        return f"; sessions holding locks on {target}: {sessions}"

    # -- who may write ------------------------------------------------------------------------

    @contextmanager
    def table_lock(self, table: QName) -> Iterator[None]:
        """Hold the partition-work lock of `table` for the block, or raise PartitionWorkBusy.

        A session-level advisory lock on the primary, taken by the operator's reconcile and by
        the compress/export jobs alike, so two writers (two operators, a job and a reconcile, a
        job started twice) never plan and change one table's partitions at once. Not waited
        for: whoever finds it taken reports whose it is and tries again later.
        """
        key = {"table": str(table)}
        row = self._execute(
            f"SELECT pg_try_advisory_lock({PARTITION_LOCK_CLASS}, hashtext(%(table)s))", key
        ).fetchone()
        if not row or row[0] is not True:
            raise PartitionWorkBusy(
                f"{table}: another session holds its partition-work lock"
                f"{self._advisory_holders(str(table))}; nothing was changed, retried later"
            )
        try:
            yield
        finally:
            with suppress(psycopg.Error):
                self._execute(
                    f"SELECT pg_advisory_unlock({PARTITION_LOCK_CLASS}, hashtext(%(table)s))", key
                )

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
        """Cancel the statement running on this connection (from another thread)."""
        with suppress(psycopg.Error):
            self.conn.cancel_safe()

    def apply(self, action: Action) -> None:
        """Every step of `action`, in order."""
        for step in steps_for(action):
            self.run_step(step, action.describe())

    # -- observation --------------------------------------------------------------------------

    def observe(self, request: CatalogRequest) -> dict[str, ObservedTable]:
        """The catalog's trees (reused while the fingerprint is unchanged, see
        CatalogCache), then exact DEFAULT counts where the DEFAULT has pages."""
        key = (str(self.target), repr(sorted(request.params().items())))
        fingerprint = self._catalog_rows(FINGERPRINT_QUERY, request)[0]
        seen = (fingerprint["count"], fingerprint["md5"])
        trees = CATALOG_CACHE.get(key, seen)
        if trees is None:
            trees = build_trees(self._catalog_rows(CATALOG_QUERY, request))
            CATALOG_CACHE.put(key, seen, trees)
        buckets = {
            name: bucket_rows(self.query(query))
            for name, query in bucket_queries(request, trees).items()
        }
        return assemble(request, trees, buckets)

    def _catalog_rows(self, query: sql.SQL, request: CatalogRequest) -> list[dict[str, Any]]:
        with (
            translated(self.where, "catalog query", reason=Reason.PARTITION_ACTION_FAILED),
            self.conn.cursor(row_factory=dict_row) as cur,
        ):
            self.statements.append(self._text(query))
            return cur.execute(query, request.params()).fetchall()

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
    """A connection to the primary (shared, pool.py) in autocommit, TimeZone UTC;
    raise the clients' error tree."""
    with pooled_autocommit(url, "primary") as (conn, target):
        db = PartitionDatabase(conn, target, **options)
        db._execute("SET TimeZone = 'UTC'")
        db._execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{db.lock_timeout_ms}ms")))
        yield db
