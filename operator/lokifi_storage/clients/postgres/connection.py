"""Where a PostgreSQL URL points, how to connect to it, and what a driver error means.

Every PostgreSQL client goes through here, for three reasons:

- a URL carries the password: it is parsed once into a `Target` (host, port, database, user),
  which is all a message may show, and a parse error is never chained, because libpq quotes the
  offending fragment of the string back;
- a failed connect is classified one way for the operator and the jobs alike (authentication,
  missing database, timeout, unreachable), with messages naming the target, never libpq's text;
- a failed statement becomes the clients' error tree one way (`translate`): a lost connection
  is ConnectionFailed, anything else a ClientError quoting what the server said, redacted
  (diagnostics.py). Callers pass what they were doing; the wording of the error is made here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    NotFound,
)
from lokifi_storage.clients.postgres import pool
from lokifi_storage.clients.postgres.diagnostics import describe_error
from lokifi_storage.domain.connection_secret import with_driver

__all__ = [
    "Connection",
    "Target",
    "connect",
    "connect_autocommit",
    "describe_target",
    "libpq_url",
    "pooled_autocommit",
    "translate",
    "translated",
]

Connection = psycopg.Connection[tuple[Any, ...]]

#: the operator's connections: short, so a dead server costs a reconcile little
APPLICATION_NAME: Final = "lokifi-storage-operator"
CONNECT_TIMEOUT_SECONDS: Final = 5
#: the jobs' own connections (backup, restore, VACUUM): a Job can afford to wait longer
JOB_APPLICATION_NAME: Final = "lokifi-storage"
JOB_CONNECT_TIMEOUT_SECONDS: Final = 10

_AUTH_MARKERS: Final = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "pg_hba.conf rejects",
    "no pg_hba.conf entry",
)


@dataclass(frozen=True)
class Target:
    """Where a URL points, without its password: safe to put in messages and status."""

    host: str
    port: str
    dbname: str
    user: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def libpq_url(url: str) -> str:
    """Accept application-style schemes (`postgresql+asyncpg://`) by handing libpq its own."""
    scheme, sep, _ = url.partition("://")
    if sep and "+" in scheme:
        return with_driver(url, "postgresql")
    return url


def describe_target(url: str) -> Target:
    """Parse `url` as libpq does and keep only what may be shown; never echo a parse error."""
    try:
        info = conninfo_to_dict(libpq_url(url))
    except (psycopg.Error, ValueError):
        # The library's message quotes the malformed fragment, which may be the password.
        raise ClientError(
            "database URL could not be parsed (expected postgresql://user:pass@host:port/db)",
            reason=Reason.CONNECTION_FAILED,
        ) from None
    return Target(
        host=str(info.get("host") or info.get("hostaddr") or "localhost"),
        port=str(info.get("port") or "5432"),
        dbname=str(info.get("dbname") or info.get("user") or ""),
        user=str(info.get("user") or ""),
    )


def _connect_error(error: psycopg.Error, where: str) -> ClientError:
    text = str(error).lower()
    if isinstance(error, pg_errors.InvalidPassword | pg_errors.InvalidAuthorizationSpecification):
        return AuthenticationFailed(f"{where}: authentication failed")
    if any(marker in text for marker in _AUTH_MARKERS):
        return AuthenticationFailed(f"{where}: authentication failed")
    if isinstance(error, pg_errors.InvalidCatalogName) or "does not exist" in text:
        return NotFound(f"{where}: database does not exist")
    if "timeout" in text:
        return ConnectionFailed(f"{where}: connection timed out")
    return ConnectionFailed(f"{where}: connection refused or server not answering")


def translate(
    error: psycopg.Error,
    where: str,
    doing: str,
    *,
    reason: str | None = None,
    conn: Connection | None = None,
) -> ClientError:
    """The clients' error for `error`, raised while `doing` (`catalog query`, `COPY`) on the
    connection `where` names (`primary user@host:5432/app`).

    Given `conn`, an OperationalError on a connection that is still open (a full disk, a
    cancelled statement) is what the server refused, not a lost connection."""
    if isinstance(error, psycopg.OperationalError) and (conn is None or conn.broken):
        return ConnectionFailed(f"{where}: connection lost during {doing}")
    return ClientError(f"{where}: {doing} failed ({describe_error(error)})", reason=reason)


@contextmanager
def translated(
    where: str, doing: str, *, reason: str | None = None, conn: Connection | None = None
) -> Iterator[None]:
    """`translate` every driver error of the block (the clients' own errors pass through)."""
    try:
        yield
    except psycopg.Error as error:
        raise translate(error, where, doing, reason=reason, conn=conn) from error


def _open(url: str, where: str, *, autocommit: bool, timeout: int, application: str) -> Connection:
    try:
        return psycopg.connect(
            libpq_url(url),
            autocommit=autocommit,
            connect_timeout=timeout,
            application_name=application,
        )
    except psycopg.Error as error:
        raise _connect_error(error, where) from error


def connect_autocommit(url: str, role: str) -> tuple[Connection, Target]:
    """An autocommit connection of the operator (its application_name and connect timeout);
    the caller closes it. `role` (`primary`, `replica r1`) starts every message about it."""
    target = describe_target(url)
    conn = _open(
        url,
        f"{role} {target}",
        autocommit=True,
        timeout=CONNECT_TIMEOUT_SECONDS,
        application=APPLICATION_NAME,
    )
    return conn, target


@contextmanager
def pooled_autocommit(url: str, role: str) -> Iterator[tuple[Connection, Target]]:
    """`connect_autocommit`, through the process's pools (pool.py): an idle connection to the
    same URL is reused, and the connections to one server stay bounded. Given back (reset) when
    the block ends; the caller does not close it."""
    target = describe_target(url)
    with pool.pools().connection(
        libpq_url(url),
        (target.host, target.port),
        lambda: connect_autocommit(url, role),
        f"{role} {target}",
    ) as (conn, _):
        yield conn, target


@contextmanager
def spare_autocommit(url: str, role: str) -> Iterator[tuple[Connection, Target] | None]:
    """Like `pooled_autocommit`, but only if the pool has a connection to give at once: None
    when the server's bound is reached (the caller then does the work on the one it has)."""
    target = describe_target(url)
    with pool.pools().spare(
        libpq_url(url), (target.host, target.port), lambda: connect_autocommit(url, role)
    ) as taken:
        yield None if taken is None else (taken[0], target)


@contextmanager
def connect(url: str, *, autocommit: bool = True) -> Iterator[Connection]:
    """A job's own connection (not pooled: a Job is one process doing one thing), closed when
    the block ends."""
    target = describe_target(url)
    conn = _open(
        url,
        str(target),
        autocommit=autocommit,
        timeout=JOB_CONNECT_TIMEOUT_SECONDS,
        application=JOB_APPLICATION_NAME,
    )
    try:
        yield conn
    finally:
        conn.close()
