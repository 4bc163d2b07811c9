"""The `lokifi_storage.job_runs` table: the CronJobs write how their last run ended, the operator
reads it (domain/job_runs.py says why it lives in the database).

One row per (resource, job), overwritten by each run: a small table that never grows. The jobs
create it when it is missing (`IF NOT EXISTS`); the operator only reads, and a database where
no job ever ran has no table, which reads as "nothing recorded".
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, Final

import psycopg
from psycopg import errors as pg_errors

from lokifi_storage.clients.postgres.connection import (
    connect_autocommit,
    pooled_autocommit,
    translate,
)
from lokifi_storage.domain.job_runs import JobRun

__all__ = ["JOB_RUNS_TABLE", "read_job_runs", "record_job_run"]

JOB_RUNS_TABLE: Final = "lokifi_storage.job_runs"
MESSAGE_LIMIT: Final = 1024

_DDL: Final = (
    "CREATE SCHEMA IF NOT EXISTS lokifi_storage",
    "CREATE TABLE IF NOT EXISTS lokifi_storage.job_runs ("
    " resource text NOT NULL, job text NOT NULL, ok boolean NOT NULL,"
    " reason text NOT NULL, message text NOT NULL,"
    " finished_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (resource, job))",
)
_UPSERT: Final = (
    "INSERT INTO lokifi_storage.job_runs (resource, job, ok, reason, message, finished_at)"
    " VALUES (%(resource)s, %(job)s, %(ok)s, %(reason)s, %(message)s, now())"
    " ON CONFLICT (resource, job) DO UPDATE SET ok = EXCLUDED.ok, reason = EXCLUDED.reason,"
    " message = EXCLUDED.message, finished_at = EXCLUDED.finished_at"
)


def record_job_run(
    url: str, resource: str, job: str, *, ok: bool, reason: str, message: str
) -> None:
    """Write the outcome of this run of `job`; raises the clients' error tree."""
    conn, target = connect_autocommit(url, "primary")
    try:
        for statement in _DDL:
            # Another resource's job may create it at the same instant.
            with suppress(pg_errors.UniqueViolation, pg_errors.DuplicateObject):
                conn.execute(statement)
        params: dict[str, Any] = {
            "resource": resource,
            "job": job,
            "ok": ok,
            "reason": reason,
            "message": message[:MESSAGE_LIMIT],
        }
        conn.execute(_UPSERT, params)
    except psycopg.Error as error:
        raise translate(error, f"primary {target}", f"recording the outcome of {job}") from None
    finally:
        conn.close()


def read_job_runs(url: str, resource: str) -> list[JobRun]:
    """The recorded last runs of `resource`'s jobs; none when no job ever recorded one."""
    with pooled_autocommit(url, "primary") as (conn, target):
        try:
            exists = conn.execute(
                "SELECT to_regclass('lokifi_storage.job_runs') IS NOT NULL"
            ).fetchone()
            if not exists or not exists[0]:
                return []
            rows = conn.execute(
                "SELECT job, ok, reason, message, finished_at FROM lokifi_storage.job_runs"
                " WHERE resource = %(resource)s ORDER BY job",
                {"resource": resource},
            ).fetchall()
        except psycopg.Error as error:
            raise translate(error, f"primary {target}", "reading the jobs' outcomes") from None
    return [JobRun(job, bool(ok), reason, message, at) for job, ok, reason, message, at in rows]
