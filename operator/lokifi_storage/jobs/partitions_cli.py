"""`lokifi-storage partitions compress|export`: the Jobs doing the heavy partition work;
`partitions unpack` (humans) restores a packed month.

Both observe the live database and plan with the same pure planner the reconciler uses,
so what compress/export do is exactly the work the reconciler reported as pending.

Inputs: the managed tables come from `-f resource.yaml` (a LokifiStorage manifest, or just its
spec) or from LOKIFI_TABLES_JSON (a JSON list of spec.postgres.tables entries, which is what the
operator puts into its Jobs). The database URL comes from the environment variable
LOKIFI_PRIMARY_URL (or the one --url-env names), never from a flag: a command line is visible
in `ps` and in the Job's spec. S3 keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or
any other source boto3 reads.

Exit codes: 0 done (or nothing to do), 1 a partition failed (the others were still done),
2 usage.
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
from lokifi_storage.clients.s3 import make_client
from lokifi_storage.clients.s3_export import ExportStore
from lokifi_storage.domain.job_env import (
    AWS_REGION_ENV,
    PRIMARY_URL_ENV,
    S3_ENDPOINT_ENV,
    S3_REGION_ENV,
    TABLES_JSON_ENV,
)
from lokifi_storage.domain.job_runs import COMPRESS_JOB, EXPORT_JOB
from lokifi_storage.domain.partitions.actions import ExportPartition
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.pack import PackPartition, plan_unpack, table_layout
from lokifi_storage.domain.partitions.plan import TablePlan, plan_table
from lokifi_storage.domain.partitions.retention_clock import clock_skew
from lokifi_storage.jobs.outcome import RunNote, job_run
from lokifi_storage.jobs.partition_compress import (
    PackResult,
    ensure_packed_table,
    pack_month,
    unpack_month,
)
from lokifi_storage.jobs.partition_export import export_and_drop
from lokifi_storage.jobs.progress import human_bytes

__all__ = ["app", "plans_for"]

app = typer.Typer(
    name="partitions",
    help=(
        "Compress archived partitions and export expired ones: the heavy work the partitions "
        "reconciler plans and leaves to Jobs.\n\n"
        "Tables come from -f resource.yaml or LOKIFI_TABLES_JSON; the database URL from "
        "LOKIFI_PRIMARY_URL (or --url-env); S3 keys from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY. Exit codes: 0 ok, 1 a partition failed, 2 usage."
    ),
    no_args_is_help=True,
)

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


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as error:
        raise _fail(f"cannot read {path}: {type(error).__name__}") from None
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
                raise _fail(f"{path} has no spec.postgres")
            return list(spec.postgres.tables), spec
        raw = os.environ.get(TABLES_JSON_ENV)
        if not raw:
            raise _fail(f"pass -f resource.yaml or set {TABLES_JSON_ENV}")
        return [TableSpec.model_validate(t) for t in json.loads(raw)], None
    except ValidationError as error:
        raise _fail(f"invalid spec: {error.errors()[0]['msg']}") from None
    except json.JSONDecodeError:
        raise _fail(f"{TABLES_JSON_ENV} is not valid JSON") from None


def _select(tables: list[TableSpec], only: list[str] | None) -> list[TableSpec]:
    if not only:
        return tables
    chosen = [t for t in tables if t.name in only]
    unknown = set(only) - {t.name for t in chosen}
    if unknown:
        raise _fail(f"not in the spec: {', '.join(sorted(unknown))}")
    return chosen


def _url(url_env: str) -> str:
    url = os.environ.get(url_env)
    if not url:
        raise _fail(f"set {url_env} to the primary's URL (postgresql://...)")
    return url


def _now(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--now {text!r} is not an ISO 8601 instant") from None
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


def _open(url: str, lock_timeout_ms: int) -> Any:
    try:
        return open_partition_database(url, lock_timeout_ms=lock_timeout_ms)
    except ClientError as error:
        raise _fail(error.message, 1) from None


def _sizes(result: PackResult, verb: str) -> str:
    return (
        f"{verb} {result.month}: {result.rows} rows, {human_bytes(result.bytes_before)} -> "
        f"{human_bytes(result.bytes_after)} ({result.ratio:.1f}x; verified: row count and "
        "digest of every column)"
    )


def _moment(db: PartitionDatabase, text: str | None, note: RunNote | None = None) -> dt.datetime:
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
        raise _fail(skew, 1)
    return server


def _tables_locked(
    db: PartitionDatabase, tables: list[TableSpec], note: RunNote
) -> Iterator[TableSpec]:
    """Each table in turn, with its partition-work lock held (shared with the operator's
    reconcile and every other job); a table whose lock is taken is reported and skipped."""
    for table in tables:
        try:
            with db.table_lock(QName(*split_table_name(table.name))):
                yield table
        except PartitionWorkBusy as busy:
            note.fail(busy.reason, busy.message)
            typer.echo(f"SKIPPED {table.name}: {busy.message}", err=True)


@app.command()
def compress(
    file: File = None,
    table: Tables = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    now: Now = None,
    lock_timeout_ms: LockTimeoutMs = 2000,
    dry_run: Annotated[bool, typer.Option(help="Print what would be packed.")] = False,
) -> None:
    """Pack archived months past archive.compressAfterDays: one row per archive.segmentBy
    group, one array per column, verified against the month before it is dropped."""
    tables, _ = load_spec(file)
    tables = _select(tables, table)
    url = _url(url_env)
    with job_run(COMPRESS_JOB, None if dry_run else url) as note:
        _compress(url, tables, now, lock_timeout_ms, dry_run, note)


def _compress(
    url: str,
    tables: list[TableSpec],
    now: str | None,
    lock_timeout_ms: int,
    dry_run: bool,
    note: RunNote,
) -> None:
    failures = 0
    try:
        with _open(url, lock_timeout_ms) as db:
            moment = _moment(db, now)
            if dry_run:
                plans = plans_for(db, tables, moment)
                listed = [
                    a.describe()
                    for p in plans.values()
                    for a in p.deferred
                    if isinstance(a, PackPartition)
                ]
                typer.echo("\n".join(listed) if listed else "nothing to compress")
                return
            done = 0
            for spec in _tables_locked(db, tables, note):
                # The view and the read function exist from the first run on, before any month
                # is due, so applications can query the archive the same way from day one.
                observed = db.observe(request_for([spec]))
                layout = table_layout(spec, observed[spec.name])
                if layout is not None and ensure_packed_table(db, layout):
                    typer.echo(
                        f"created {layout.parent}, the view {layout.view} and "
                        f"the function {layout.function}"
                    )
                for action in plans_for(db, [spec], moment)[spec.name].deferred:
                    if not isinstance(action, PackPartition):
                        continue
                    done += 1
                    try:
                        result = pack_month(db, action)
                    except ClientError as error:
                        failures += 1
                        note.fail(error.reason, f"{action.month}: {error.message}")
                        typer.echo(f"FAILED {action.month}: {error.message}", err=True)
                        continue
                    typer.echo(_sizes(result, "packed"))
            if not done and not note.reason:
                typer.echo("nothing to compress")
    except ClientError as error:
        note.fail(error.reason, error.message)
        raise _fail(error.message, 1) from None
    if failures or note.reason:
        raise typer.Exit(1)


@app.command()
def unpack(
    month: Annotated[
        list[str],
        typer.Argument(help="Packed month(s) to restore, e.g. ai_messages_p2024_10."),
    ],
    file: File = None,
    table: Annotated[str | None, typer.Option(help="The table (needed with several).")] = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    lock_timeout_ms: LockTimeoutMs = 2000,
) -> None:
    """Restore packed months to ordinary partitions of the archive table (for back-fills,
    corrections or a change of mind), verified like packing. The next `compress` packs them
    again while archive.compressAfterDays says so."""
    tables, _ = load_spec(file)
    chosen = _select(tables, [table] if table else None)
    chosen = [t for t in chosen if t.archive is not None and t.partitionBy is not None]
    if len(chosen) != 1:
        raise _fail("name the table with --table (one with an archive in the spec)")
    spec = chosen[0]
    failures = 0
    try:
        with _open(_url(url_env), lock_timeout_ms) as db:
            for name in month:
                observed = db.observe(request_for([spec]))[spec.name]
                try:
                    action = plan_unpack(spec, observed, name)
                except ValueError as error:
                    failures += 1
                    typer.echo(f"FAILED {name}: {error}", err=True)
                    continue
                try:
                    result = unpack_month(db, action)
                except ClientError as error:
                    failures += 1
                    typer.echo(f"FAILED {name}: {error.message}", err=True)
                    continue
                typer.echo(_sizes(result, "unpacked"))
    except ClientError as error:
        raise _fail(error.message, 1) from None
    if failures:
        raise typer.Exit(1)


app.command("decompress", help="Same as unpack.")(unpack)


@app.command()
def export(
    file: File = None,
    table: Tables = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    endpoint: Annotated[
        str | None,
        typer.Option(envvar=S3_ENDPOINT_ENV, help="S3 endpoint (default: the spec's)."),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(envvar=[S3_REGION_ENV, AWS_REGION_ENV], help="S3 region."),
    ] = None,
    now: Now = None,
    lock_timeout_ms: LockTimeoutMs = 2000,
    dry_run: Annotated[bool, typer.Option(help="Print what would be exported.")] = False,
) -> None:
    """Export partitions past retention.dropAfterDays to S3, verify each object, then drop.

    Ages are measured by the database server's clock (or at --now); when this machine's clock
    is more than a few minutes off the server's, nothing is exported or dropped (exit 1).
    """
    tables, spec = load_spec(file)
    tables = _select(tables, table)
    url = _url(url_env)
    with job_run(EXPORT_JOB, None if dry_run else url) as note:
        storage = spec.objectStorage if spec is not None else None
        try:
            client = make_client(
                endpoint or (storage.endpoint if storage else None),
                region or (storage.region if storage else None),
                None,
                None,
            )
        except ClientError as error:
            note.fail(error.reason, error.message)
            raise _fail(error.message, 1) from None
        _export(url, client, tables, now, lock_timeout_ms, dry_run, note)


def _export(
    url: str,
    client: Any,
    tables: list[TableSpec],
    now: str | None,
    lock_timeout_ms: int,
    dry_run: bool,
    note: RunNote,
) -> None:
    failures = 0
    try:
        with _open(url, lock_timeout_ms) as db:
            moment = _moment(db, now, note)
            if dry_run:
                listed = [
                    a.describe()
                    for p in plans_for(db, tables, moment).values()
                    for a in p.deferred
                    if isinstance(a, ExportPartition)
                ]
                typer.echo("\n".join(listed) if listed else "nothing to export")
                return
            done = 0
            for spec in _tables_locked(db, tables, note):
                plans = plans_for(db, [spec], moment)
                for action in plans[spec.name].deferred:
                    if not isinstance(action, ExportPartition):
                        continue
                    done += 1
                    try:
                        result = export_and_drop(db, ExportStore(client, action.bucket), action)
                    except ClientError as error:
                        failures += 1
                        note.fail(error.reason, f"{action.partition}: {error.message}")
                        typer.echo(f"FAILED {action.partition}: {error.message}", err=True)
                        continue
                    how = "uploaded" if result.uploaded else "already there, verified"
                    typer.echo(
                        f"exported {result.partition}: {result.rows} rows, "
                        f"{human_bytes(result.csv_bytes)} CSV -> "
                        f"{human_bytes(result.stored_bytes)} "
                        f"s3://{result.bucket}/{result.key} ({how}, sha256 "
                        f"{result.sha256[:12]}...); dropped"
                    )
            if not done and not note.reason:
                typer.echo("nothing to export")
    except ClientError as error:
        note.fail(error.reason, error.message)
        raise _fail(error.message, 1) from None
    if failures or note.reason:
        raise typer.Exit(1)
