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

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar

import typer

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.clients.s3 import make_client
from lokifi_storage.clients.s3_export import ExportStore
from lokifi_storage.domain.job_env import (
    AWS_REGION_ENV,
    PRIMARY_URL_ENV,
    S3_ENDPOINT_ENV,
    S3_REGION_ENV,
)
from lokifi_storage.domain.job_runs import COMPRESS_JOB, EXPORT_JOB
from lokifi_storage.domain.partitions.actions import ExportPartition
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.pack import PackPartition, plan_unpack, table_layout
from lokifi_storage.jobs.outcome import RunNote, job_run
from lokifi_storage.jobs.partition_compress import (
    PackResult,
    ensure_packed_table,
    pack_month,
    unpack_month,
)
from lokifi_storage.jobs.partition_export import export_and_drop
from lokifi_storage.jobs.partitions_args import (
    LOCK_WAIT_SECONDS,
    File,
    LockTimeoutMs,
    LockWait,
    Now,
    Tables,
    UrlEnv,
    exit_error,
    load_spec,
    open_database,
    plan_moment,
    plans_for,
    primary_url,
    select_tables,
    tables_locked,
)
from lokifi_storage.jobs.progress import human_bytes

__all__ = ["app"]

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

Deferred = TypeVar("Deferred", PackPartition, ExportPartition)


@dataclass(frozen=True)
class Run:
    """One compress or export run, as its command line asked for it."""

    url: str
    tables: list[TableSpec]
    now: str | None
    lock_timeout_ms: int
    lock_wait: float
    dry_run: bool
    note: RunNote


def _run_deferred(
    run: Run,
    kind: type[Deferred],
    verb: str,
    apply: Callable[[PartitionDatabase, Deferred], str],
    label: Callable[[Deferred], object],
    *,
    before: Callable[[PartitionDatabase, TableSpec], None] | None = None,
    clock_check: bool = False,
) -> None:
    """The deferred actions of one `kind`, planned afresh per table under its lock, each
    applied on its own: one failing is reported and the others still run (exit 1 at the end).

    `apply` returns the line to print; `label` names an action in a failure; `before` runs for
    each table before its actions; `clock_check` stops the run when the pod's clock is off the
    server's.
    """
    failures = 0
    note = run.note
    try:
        with open_database(run.url, run.lock_timeout_ms) as db:
            moment = plan_moment(db, run.now, note if clock_check else None)
            if run.dry_run:
                listed = [
                    a.describe()
                    for p in plans_for(db, run.tables, moment).values()
                    for a in p.deferred
                    if isinstance(a, kind)
                ]
                typer.echo("\n".join(listed) if listed else f"nothing to {verb}")
                return
            done = 0
            for spec in tables_locked(db, run.tables, note, run.lock_wait):
                if before is not None:
                    before(db, spec)
                for action in plans_for(db, [spec], moment)[spec.name].deferred:
                    if not isinstance(action, kind):
                        continue
                    done += 1
                    try:
                        line = apply(db, action)
                    except ClientError as error:
                        failures += 1
                        note.fail(error.reason, f"{label(action)}: {error.message}")
                        typer.echo(f"FAILED {label(action)}: {error.message}", err=True)
                        continue
                    typer.echo(line)
            if not done and not note.reason:
                typer.echo(f"nothing to {verb}")
    except ClientError as error:
        note.fail(error.reason, error.message)
        raise exit_error(error.message, 1) from None
    if failures or note.reason:
        raise typer.Exit(1)


def _ensure_packed_table(db: PartitionDatabase, spec: TableSpec) -> None:
    # The view and the read function exist from the first run on, before any month is due, so
    # applications can query the archive the same way from day one.
    observed = db.observe(request_for([spec]))
    layout = table_layout(spec, observed[spec.name])
    if layout is not None and ensure_packed_table(db, layout):
        typer.echo(
            f"created {layout.parent}, the view {layout.view} and the function {layout.function}"
        )


def _pack(db: PartitionDatabase, action: PackPartition) -> str:
    return _sizes(pack_month(db, action), "packed")


def _export(client: Any, db: PartitionDatabase, action: ExportPartition) -> str:
    result = export_and_drop(db, ExportStore(client, action.bucket), action)
    how = "uploaded" if result.uploaded else "already there, verified"
    return (
        f"exported {result.partition}: {result.rows} rows, "
        f"{human_bytes(result.csv_bytes)} CSV -> "
        f"{human_bytes(result.stored_bytes)} "
        f"s3://{result.bucket}/{result.key} ({how}, sha256 "
        f"{result.sha256[:12]}...); dropped"
    )


def _sizes(result: PackResult, verb: str) -> str:
    return (
        f"{verb} {result.month}: {result.rows} rows, {human_bytes(result.bytes_before)} -> "
        f"{human_bytes(result.bytes_after)} ({result.ratio:.1f}x; verified: row count and "
        "digest of every column)"
    )


@app.command()
def compress(
    file: File = None,
    table: Tables = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    now: Now = None,
    lock_timeout_ms: LockTimeoutMs = 2000,
    lock_wait: LockWait = LOCK_WAIT_SECONDS,
    dry_run: Annotated[bool, typer.Option(help="Print what would be packed.")] = False,
) -> None:
    """Pack archived months past archive.compressAfterDays: one row per archive.segmentBy
    group, one array per column, verified against the month before it is dropped."""
    tables, _ = load_spec(file)
    tables = select_tables(tables, table)
    url = primary_url(url_env)
    with job_run(COMPRESS_JOB, None if dry_run else url) as note:
        run = Run(url, tables, now, lock_timeout_ms, lock_wait, dry_run, note)
        _run_deferred(
            run,
            PackPartition,
            "compress",
            _pack,
            lambda action: action.month,
            before=_ensure_packed_table,
        )


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
    lock_wait: LockWait = LOCK_WAIT_SECONDS,
) -> None:
    """Restore packed months to ordinary partitions of the archive table (for back-fills,
    corrections or a change of mind), verified like packing. The next `compress` packs them
    again while archive.compressAfterDays says so."""
    tables, _ = load_spec(file)
    chosen = select_tables(tables, [table] if table else None)
    chosen = [t for t in chosen if t.archive is not None and t.partitionBy is not None]
    if len(chosen) != 1:
        raise exit_error("name the table with --table (one with an archive in the spec)")
    failures = len(month)  # until the table's lock is held; a skipped table fails them all
    try:
        with open_database(primary_url(url_env), lock_timeout_ms) as db:
            for spec in tables_locked(db, chosen, None, lock_wait):
                failures = _unpack_months(db, spec, month)
    except ClientError as error:
        raise exit_error(error.message, 1) from None
    if failures:
        raise typer.Exit(1)


def _unpack_months(db: PartitionDatabase, spec: TableSpec, months: list[str]) -> int:
    """Unpack each month in turn, under the table's lock; the number that failed."""
    failures = 0
    for name in months:
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
    return failures


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
    lock_wait: LockWait = LOCK_WAIT_SECONDS,
    dry_run: Annotated[bool, typer.Option(help="Print what would be exported.")] = False,
) -> None:
    """Export partitions past retention.dropAfterDays to S3, verify each object, then drop.

    Ages are measured by the database server's clock (or at --now); when this machine's clock
    is more than a few minutes off the server's, nothing is exported or dropped (exit 1).
    """
    tables, spec = load_spec(file)
    tables = select_tables(tables, table)
    url = primary_url(url_env)
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
            raise exit_error(error.message, 1) from None
        run = Run(url, tables, now, lock_timeout_ms, lock_wait, dry_run, note)
        _run_deferred(
            run,
            ExportPartition,
            "export",
            partial(_export, client),
            lambda action: action.partition,
            clock_check=True,
        )
