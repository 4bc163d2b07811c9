"""`lokifi-storage backup ...` and `lokifi-storage restore`: the commands backup CronJobs run.

Secrets never go on the command line (it is visible in `ps`, /proc and the CronJob's spec):
the database URL is read from an environment variable (LOKIFI_PRIMARY_URL unless --url-env
names another; a CronJob fills it from a Secret with env.valueFrom.secretKeyRef) and the S3
keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or any other source boto3 reads: an IRSA
role, an instance profile). Everything else may be a flag or its environment variable.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from lokifi_storage.api.spec import Compression, StorageClass
from lokifi_storage.clients.backup_store import ARCHIVE_CLASSES
from lokifi_storage.clients.postgres.tools import connection_args
from lokifi_storage.domain.job_env import (
    PRIMARY_URL_ENV,
)
from lokifi_storage.domain.job_runs import BACKUP_JOB_PREFIX
from lokifi_storage.jobs.backup_args import (
    BackupKey,
    Bucket,
    Endpoint,
    Jobs,
    Name,
    Namespace,
    OfSchedule,
    PgBin,
    Prefix,
    Region,
    Source,
    UrlEnv,
    VerifyTargetEnv,
    Workdir,
    backup_target,
    database_url,
    run_job,
)
from lokifi_storage.jobs.backup_create import (
    CreateOptions,
    create_backup,
    prune_schedule,
)
from lokifi_storage.jobs.backup_restore import (
    RestoreOptions,
    find_backup,
    guard_clean,
    list_backups,
    prepare_target,
    restore_backup,
)
from lokifi_storage.jobs.backup_verify import verify_backup
from lokifi_storage.jobs.outcome import job_run
from lokifi_storage.jobs.progress import Reporter, human_bytes

__all__ = ["app", "restore"]

app = typer.Typer(
    name="backup",
    help=(
        "Create, list, verify and prune pg_dump backups in S3.\n\n"
        "The database URL comes from the environment variable LOKIFI_PRIMARY_URL (or the one "
        "--url-env names), never from a flag; S3 keys from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or boto3's other sources). Exit codes: 0 ok, 1 failure, "
        "2 usage, 3 corrupt backup, 4 verify found different row counts, 143 SIGTERM."
    ),
    no_args_is_help=True,
)


@app.command()
def create(
    schedule: Annotated[str, typer.Option(help="Schedule name: the folder of this backup.")],
    bucket: Bucket,
    prefix: Prefix = "backups/",
    name: Name = None,
    namespace: Namespace = None,
    endpoint: Endpoint = None,
    region: Region = None,
    compression: Annotated[Compression, typer.Option(help="zstd, gzip, lz4 or none.")] = "zstd",
    storage_class: Annotated[StorageClass, typer.Option(help="S3 storage class.")] = "STANDARD",
    keep: Annotated[
        int | None,
        typer.Option(min=1, help="Prune the schedule to this many backups after success."),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            help="Verify the new backup: restored on --verify-target-env's server, else read "
            "in full without a database."
        ),
    ] = False,
    verify_target_env: VerifyTargetEnv = None,
    part_size_mb: Annotated[int, typer.Option(min=5, help="First upload part size.")] = 16,
    level: Annotated[int | None, typer.Option(help="Compression level (codec default).")] = None,
    threads: Annotated[int, typer.Option(help="zstd worker threads (0: inline).")] = 0,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    pg_bin: PgBin = None,
) -> None:
    """pg_dump the database into one new backup, streamed to S3 with no temporary file."""
    url = database_url(url_env)
    target = backup_target(bucket, prefix, namespace, name, None, endpoint, region, url)
    reporter = Reporter()
    options = CreateOptions(
        schedule=schedule,
        compression=compression,
        storage_class=storage_class,
        keep=keep,
        part_size=part_size_mb * 1024 * 1024,
        level=level,
        threads=threads,
        pg_bin=pg_bin,
    )
    with job_run(f"{BACKUP_JOB_PREFIX}{schedule}", url) as note:
        result = run_job(lambda: create_backup(url, target, options, reporter), note)
        if verify and storage_class in ARCHIVE_CLASSES:
            reporter.info(
                f"NOT VERIFIED: {storage_class} objects cannot be read without an S3 restore "
                "request (use GLACIER_IR for a schedule that should be verified)"
            )
        elif verify:
            verify_url = database_url(verify_target_env) if verify_target_env else None
            run_job(
                lambda: verify_backup(
                    target.store,
                    result.key,
                    verify_url,
                    RestoreOptions(pg_bin=pg_bin),
                    reporter,
                    primary_url=url,
                ),
                note,
            )


@app.command("list")
def list_(
    bucket: Bucket,
    prefix: Prefix = "backups/",
    name: Name = None,
    namespace: Namespace = None,
    source: Source = None,
    endpoint: Endpoint = None,
    region: Region = None,
    schedule: Annotated[str | None, typer.Option(help="Only this schedule.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    url_env: UrlEnv = PRIMARY_URL_ENV,
) -> None:
    """List the backups in the bucket, oldest first."""
    target = backup_target(
        bucket, prefix, namespace, name, source, endpoint, region, os.environ.get(url_env)
    )
    runs = run_job(lambda: list_backups(target.store, target.prefix, target.name))
    runs = [r for r in runs if schedule is None or r.schedule == schedule]
    reporter = Reporter()
    if as_json:
        for run in runs:
            record = {
                "schedule": run.schedule,
                "startedAt": run.started_at.isoformat(),
                "complete": run.complete,
                "key": run.dump.key if run.dump else None,
                "sizeBytes": run.dump.size if run.dump else None,
                "verified": run.verified,
                "verifyKind": run.verify_kind,
            }
            typer.echo(json.dumps(record))
        return
    table = Table(title=f"s3://{target.store.bucket}/{target.prefix}{target.name}/")
    for column in ("schedule", "started (UTC)", "size", "state", "verified", "key"):
        table.add_column(column)
    for run in runs:
        state = "complete" if run.complete else ("no manifest" if run.dump else "orphan sidecar")
        verified = {None: "-", True: "passed", False: "FAILED"}[run.verified]
        if run.verify_kind == "archive":
            verified += " (no database)"
        table.add_row(
            run.schedule,
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            human_bytes(run.dump.size) if run.dump else "-",
            state,
            verified,
            run.dump.key if run.dump else "-",
        )
    reporter.console.print(table)


@app.command("verify")
def verify_(
    bucket: Bucket,
    prefix: Prefix = "backups/",
    name: Name = None,
    namespace: Namespace = None,
    source: Source = None,
    endpoint: Endpoint = None,
    region: Region = None,
    backup: BackupKey = None,
    schedule: OfSchedule = None,
    jobs: Jobs = 1,
    workdir: Workdir = None,
    target_env: VerifyTargetEnv = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    pg_bin: PgBin = None,
) -> None:
    """Verify a backup against its manifest, never on the primary.

    With --target-env: restored into a scratch database on that server (refused when it is
    the primary's), row counts compared, scratch database dropped. Without: the object's
    digest checked and the archive read in full by pg_restore without a database, row counts
    compared. Records the outcome and its kind next to the backup (status.backups).
    """
    url = os.environ.get(url_env)
    target = backup_target(bucket, prefix, namespace, name, source, endpoint, region, url)
    verify_url = database_url(target_env) if target_env else None
    reporter = Reporter()

    def body() -> None:
        key = find_backup(target.store, target.prefix, target.name, schedule=schedule, key=backup)
        options = RestoreOptions(jobs=jobs, workdir=workdir, pg_bin=pg_bin)
        verify_backup(target.store, key, verify_url, options, reporter, primary_url=url)

    run_job(body)


@app.command()
def prune(
    schedule: Annotated[str, typer.Option(help="Schedule to prune.")],
    keep: Annotated[int, typer.Option(min=1, help="Backups to keep.")],
    bucket: Bucket,
    prefix: Prefix = "backups/",
    name: Name = None,
    namespace: Namespace = None,
    source: Source = None,
    endpoint: Endpoint = None,
    region: Region = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
) -> None:
    """Apply retention to one schedule (create --keep does this after every backup)."""
    from datetime import UTC, datetime

    target = backup_target(
        bucket, prefix, namespace, name, source, endpoint, region, os.environ.get(url_env)
    )
    reporter = Reporter()
    run_job(lambda: prune_schedule(target, schedule, keep, datetime.now(UTC), reporter))


def restore(
    bucket: Bucket,
    to: Annotated[
        str | None,
        typer.Option(
            help="Target database URL. Leave the password out (use PGPASSWORD or --to-env): "
            "a command line is visible to every user of the machine."
        ),
    ] = None,
    to_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the target URL.")
    ] = None,
    prefix: Prefix = "backups/",
    name: Name = None,
    namespace: Namespace = None,
    source: Source = None,
    endpoint: Endpoint = None,
    region: Region = None,
    backup: BackupKey = None,
    schedule: OfSchedule = None,
    jobs: Jobs = 1,
    workdir: Workdir = None,
    create_db: Annotated[
        bool, typer.Option("--create/--no-create", help="Create the target database if missing.")
    ] = True,
    clean: Annotated[
        bool, typer.Option(help="Drop and replace objects that already exist in the target.")
    ] = False,
    no_owner: Annotated[
        bool, typer.Option(help="Skip ownership and grants (target lacks the roles).")
    ] = False,
    replace_database: Annotated[
        str | None,
        typer.Option(
            help="With --clean over the primary's database (the one $LOKIFI_PRIMARY_URL "
            "names), or when that cannot be checked: repeat the target database's name."
        ),
    ] = None,
    url_env: UrlEnv = PRIMARY_URL_ENV,
    pg_bin: PgBin = None,
) -> None:
    """Restore a backup from S3 into a database (pg_restore, --jobs N in parallel).

    `--clean` over the database a LokifiStorage names as its primary is refused unless
    --replace-database repeats its name.
    """
    if (to is None) == (to_env is None):
        typer.echo("error: pass exactly one of --to or --to-env", err=True)
        raise typer.Exit(2)
    to_url = to if to is not None else database_url(str(to_env))
    target = backup_target(
        bucket, prefix, namespace, name, source, endpoint, region, os.environ.get(url_env)
    )
    reporter = Reporter()
    if to is not None and connection_args(to).password is not None:
        reporter.info("WARNING the password in --to is visible in the process list")

    def body() -> None:
        if clean:
            guard_clean(to_url, os.environ.get(url_env), replace_database)
        key = find_backup(target.store, target.prefix, target.name, schedule=schedule, key=backup)
        prepare_target(to_url, create=create_db, clean=clean)
        options = RestoreOptions(
            jobs=jobs, workdir=workdir, no_owner=no_owner, clean=clean, pg_bin=pg_bin
        )
        restore_backup(target.store, key, to_url, options, reporter)

    run_job(body)
