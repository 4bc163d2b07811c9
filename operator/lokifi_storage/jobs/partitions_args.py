"""What the `partitions` commands share: their options, and how they read their inputs.

Tables come from `-f resource.yaml` or LOKIFI_TABLES_JSON, the URL from an environment variable,
the instant ages are measured at from the database server (or --now), and each table is worked
on under its partition-work lock. Every command reads them the same way, so they are here once
and jobs/partitions_cli.py holds only the commands.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.coordinates import KIND
from lokifi_storage.api.names import split_table_name
from lokifi_storage.api.spec import LokifiStorageSpec, TableSpec
from lokifi_storage.clients.errors import ClientError, PartitionWorkBusy
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from lokifi_storage.domain.job_env import TABLES_JSON_ENV
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.plan import TablePlan, plan_table
from lokifi_storage.domain.partitions.retention_clock import clock_skew
from lokifi_storage.jobs.outcome import RunNote

__all__ = [
    "LOCK_WAIT_SECONDS",
    "File",
    "LockTimeoutMs",
    "LockWait",
    "Now",
    "Tables",
    "UrlEnv",
    "exit_error",
    "load_spec",
    "open_database",
    "plan_moment",
    "plans_for",
    "primary_url",
    "select_tables",
    "tables_locked",
]

File = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="LokifiStorage manifest (or its spec) naming the tables."),
]
Tables = Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")]
UrlEnv = Annotated[
    str, typer.Option(help="Environment variable holding the primary's URL (with password).")
]
Now = Annotated[
    str | None,
    typer.Option(help="Plan as if it were this ISO 8601 instant (default: now, UTC)."),
]
LockTimeoutMs = Annotated[
    int, typer.Option(min=1, help="lock_timeout of each DDL step, in milliseconds.")
]
LockWait = Annotated[
    float,
    typer.Option(
        "--lock-wait",
        min=0,
        help=(
            "Seconds to wait for a table another writer holds (the operator's reconcile, "
            "another job) before skipping it."
        ),
    ),
]
#: a job's wait for a table's partition-work lock unless --lock-wait says otherwise
LOCK_WAIT_SECONDS = 120.0


def exit_error(message: str, code: int = 2) -> typer.Exit:
    """The message on stderr and the exit to raise: 2 for usage, 1 for a failure."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as error:
        raise exit_error(f"cannot read {path}: {type(error).__name__}") from None
    return docs


def load_spec(path: Path | None) -> tuple[list[TableSpec], LokifiStorageSpec | None]:
    """Tables (and the whole spec when a file was given) from -f or LOKIFI_TABLES_JSON."""
    try:
        if path is not None:
            docs = _documents(path)
            doc = next((d for d in docs if d.get("kind") == KIND), None)
            body = doc.get("spec", {}) if doc is not None else (docs[0] if docs else {})
            spec = LokifiStorageSpec.model_validate(body)
            if spec.postgres is None:
                raise exit_error(f"{path} has no spec.postgres")
            return list(spec.postgres.tables), spec
        raw = os.environ.get(TABLES_JSON_ENV)
        if not raw:
            raise exit_error(f"pass -f resource.yaml or set {TABLES_JSON_ENV}")
        return [TableSpec.model_validate(t) for t in json.loads(raw)], None
    except ValidationError as error:
        raise exit_error(f"invalid spec: {error.errors()[0]['msg']}") from None
    except json.JSONDecodeError:
        raise exit_error(f"{TABLES_JSON_ENV} is not valid JSON") from None


def select_tables(tables: list[TableSpec], only: list[str] | None) -> list[TableSpec]:
    if not only:
        return tables
    chosen = [t for t in tables if t.name in only]
    unknown = set(only) - {t.name for t in chosen}
    if unknown:
        raise exit_error(f"not in the spec: {', '.join(sorted(unknown))}")
    return chosen


def primary_url(url_env: str) -> str:
    url = os.environ.get(url_env)
    if not url:
        raise exit_error(f"set {url_env} to the primary's URL (postgresql://...)")
    return url


def _now(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise exit_error(f"--now {text!r} is not an ISO 8601 instant") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def plans_for(
    db: PartitionDatabase, tables: list[TableSpec], now: dt.datetime
) -> dict[str, TablePlan]:
    observed = db.observe(request_for(tables))
    source = db.system_identifier() if any(t.retention for t in tables) else ""
    return {
        t.name: plan_table(t, observed[t.name], now, database=db.database, source=source)
        for t in tables
    }


def open_database(url: str, lock_timeout_ms: int) -> Any:
    try:
        return open_partition_database(url, lock_timeout_ms=lock_timeout_ms)
    except ClientError as error:
        raise exit_error(error.message, 1) from None


def plan_moment(
    db: PartitionDatabase, text: str | None, note: RunNote | None = None
) -> dt.datetime:
    """The instant ages are measured at: `--now` when given, else the database server's clock.

    With `note` (the export), a pod clock more than a few minutes off the server's stops the
    job before anything is exported or dropped: something is wrong with time on one side.
    """
    if text is not None:
        return _now(text)
    server = db.server_now()
    skew = clock_skew(dt.datetime.now(dt.UTC), server)
    if skew is not None and note is not None:
        note.fail(Reason.CLOCK_SKEW, skew)
        raise exit_error(skew, 1)
    return server


def tables_locked(
    db: PartitionDatabase,
    tables: list[TableSpec],
    note: RunNote | None,
    wait_seconds: float = LOCK_WAIT_SECONDS,
) -> Iterator[TableSpec]:
    """Each table in turn, with its partition-work lock held (shared with the operator's
    reconcile and every other job); a table whose lock stays taken for `wait_seconds` is
    reported and skipped."""
    for table in tables:
        try:
            with db.table_lock(QName(*split_table_name(table.name)), wait_seconds):
                yield table
        except PartitionWorkBusy as busy:
            if note is not None:
                note.fail(busy.reason, busy.message)
            typer.echo(f"SKIPPED {table.name}: {busy.message}", err=True)
