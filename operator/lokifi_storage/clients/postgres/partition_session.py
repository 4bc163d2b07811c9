"""How the partition client sends statements: one connection, every statement recorded, each
step of an action under `lock_timeout` with retries.

Every statement goes through `PartitionSession._execute`, which records its text in
`statements`; `writes` is the subset sent by action steps (DDL, DML, LOCK), never the reads
of observation or the session's SET commands. That record is how tests prove a reconcile with
nothing to do sends no DDL, and how `plan` proves it only reads.

Locking: each step sets `lock_timeout` (short for DDL that blocks traffic, long for
CONCURRENTLY work that does not) and is retried with exponential backoff when a lock is not
granted in time or a deadlock is detected. When a step keeps timing out, the error names the
sessions holding locks on the relation (pid, user, application, state, transaction age), never
their query text, which could carry secrets.

Apart from what the client does with it (clients/postgres/partitions.py: the table lock,
observation, claims, the data of exports) because this is the part every write depends on: the
record, the fence before each write, the retries and the clean-up of a failed step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq, sql

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError, LockTimeout
from lokifi_storage.clients.postgres.connection import Target, translate, translated
from lokifi_storage.domain.partitions.actions import Action
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.statements import Check, Guard, Statement, Step
from lokifi_storage.domain.partitions.steps import steps_for

__all__ = ["PartitionSession"]

DEFAULT_LOCK_TIMEOUT_MS = 2_000
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 0.5

Conn = psycopg.Connection[Any]


class PartitionSession:
    """One connection to the primary for the length of a reconcile or a job: its statements,
    recorded, and the steps of partition actions run on it."""

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

    def apply(self, action: Action) -> None:
        """Every step of `action`, in order."""
        for step in steps_for(action):
            self.run_step(step, action.describe())
