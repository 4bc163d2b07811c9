"""The options the backup commands and `restore` share, and how they find their backups.

Every backup command names its folder the same way (bucket, prefix, namespace, resource name and
the source database's identity) and fails the same way (message on stderr, documented exit
code, the reason the operator reads): this module holds that once, and jobs/backup_cli.py only
the commands themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.backup import server_identity
from lokifi_storage.clients.postgres.connection import describe_target
from lokifi_storage.clients.s3 import make_client
from lokifi_storage.domain.backup_catalog import backup_folder, name_prefix, source_id
from lokifi_storage.domain.job_env import (
    AWS_REGION_ENV,
    PG_BIN_ENV,
    S3_ENDPOINT_ENV,
    S3_REGION_ENV,
)
from lokifi_storage.jobs.backup_create import BackupTarget
from lokifi_storage.jobs.outcome import JobError, RunNote, TerminatedError, sigterm_raises

Bucket = Annotated[
    str, typer.Option(envvar="LOKIFI_BACKUP_BUCKET", help="Bucket holding the backups.")
]
Prefix = Annotated[
    str, typer.Option(envvar="LOKIFI_BACKUP_PREFIX", help="Key prefix of every backup.")
]
Name = Annotated[
    str | None,
    typer.Option(
        envvar="LOKIFI_BACKUP_NAME",
        help="Name of the LokifiStorage resource (the operator passes it); "
        "defaults to the database name of the URL.",
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option(
        envvar="LOKIFI_BACKUP_NAMESPACE",
        help="Namespace of the LokifiStorage resource (the operator passes it).",
    ),
]
Source = Annotated[
    str | None,
    typer.Option(
        envvar="LOKIFI_BACKUP_SOURCE",
        help="<system_identifier>-<database> of the backed-up database, for when it cannot be "
        "reached (`backup list` names them); default: read from the database URL.",
    ),
]
Endpoint = Annotated[
    str | None,
    typer.Option(envvar=S3_ENDPOINT_ENV, help="S3-compatible endpoint URL (default AWS)."),
]
Region = Annotated[
    str | None,
    typer.Option(envvar=[S3_REGION_ENV, AWS_REGION_ENV, "AWS_REGION"], help="Region."),
]
UrlEnv = Annotated[
    str,
    typer.Option(help="Environment variable that holds the database URL (with its password)."),
]
PgBin = Annotated[
    str | None,
    typer.Option(envvar=PG_BIN_ENV, help="Directory of pg_dump/pg_restore (default PATH)."),
]
Jobs = Annotated[
    int,
    typer.Option(min=1, help="pg_restore --jobs; above 1 the dump is first written to --workdir."),
]
Workdir = Annotated[
    str | None, typer.Option(help="Directory for the temporary dump file of --jobs > 1.")
]
VerifyTargetEnv = Annotated[
    str | None,
    typer.Option(
        help="Environment variable with the URL of a scratch server (not the primary's) to "
        "restore into; without it, verification reads the archive without a database."
    ),
]
# How verify and restore pick the backup they read: --backup names one, --schedule takes the
# newest of that schedule, neither takes the newest of all.
BackupKey = Annotated[str | None, typer.Option(help="Dump key; default the newest.")]
OfSchedule = Annotated[str | None, typer.Option(help="Newest backup of this schedule.")]

T = TypeVar("T")


def run_job(action: Callable[[], T], note: RunNote | None = None) -> T:
    """Run a job body; map its failure to a message on stderr and the documented exit code
    (and, with `note`, to the reason and message the operator reads)."""
    try:
        with sigterm_raises():
            return action()
    except TerminatedError as stop:
        typer.echo(f"error: {stop}; cleaned up", err=True)
        if note is not None:
            note.fail(Reason.BACKUP_FAILED, f"{stop}; cleaned up")
        raise typer.Exit(stop.exit_code) from None
    except (JobError, ClientError) as error:
        typer.echo(f"error: {error}", err=True)
        if note is not None:
            note.fail(error.reason, str(error))
        raise typer.Exit(getattr(error, "exit_code", 1)) from None


def database_url(url_env: str) -> str:
    url = os.environ.get(url_env)
    if not url:
        typer.echo(f"error: set {url_env} to the database URL (postgresql://...)", err=True)
        raise typer.Exit(2)
    return url


def usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def backup_target(
    bucket: str,
    prefix: str,
    namespace: str | None,
    name: str | None,
    source: str | None,
    endpoint: str | None,
    region: str | None,
    url: str | None,
) -> BackupTarget:
    """The folder of these backups: namespace, resource name and the source's identity.

    The source comes from the database itself (its system_identifier and name), so a command
    only ever sees the backups of the database it was pointed at.
    """
    if namespace is None:
        raise usage_error(
            "pass --namespace (or set LOKIFI_BACKUP_NAMESPACE): the namespace of the "
            "LokifiStorage resource whose backups these are"
        )
    if name is None:
        if url is None:
            raise usage_error("pass --name (or set LOKIFI_BACKUP_NAME)")
        name = describe_target(url).dbname
    client = make_client(endpoint, region, None, None)
    store = BackupStore(client, bucket)
    if source is None:
        if url is None:
            raise usage_error(
                "set LOKIFI_PRIMARY_URL (or --url-env) to the database whose backups these are, "
                "or pass --source; sources in the bucket: "
                + (", ".join(sources_of(store, prefix, namespace, name)) or "none")
            )
        try:
            source = source_id(*server_identity(url))
        except ClientError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
    try:
        folder = backup_folder(namespace, name, source)
    except ValueError as error:
        raise usage_error(str(error)) from None
    return BackupTarget(store=store, prefix=prefix, name=folder)


def sources_of(store: BackupStore, prefix: str, namespace: str, name: str) -> list[str]:
    """The source folders under one resource's folder, for the hint of a usage error."""
    try:
        base = name_prefix(prefix, f"{namespace}/{name}")
        keys = [o.key[len(base) :] for o in store.list_objects(base)]
    except (ClientError, ValueError):
        return []
    return sorted({key.split("/", 1)[0] for key in keys if "/" in key})
