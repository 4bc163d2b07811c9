"""The `lokifi-storage` command: what admins, CronJobs and the operator's Deployment run.

Each command group lives beside the layer it drives; this module only wires them together so
`lokifi-storage --help` lists everything in one place.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from lokifi_storage import __version__
from lokifi_storage.domain.job_env import JOB_IMAGE_ENV


def _root() -> None:
    """Keep Lokifi's storage stack at the state a LokifiStorage declares."""


def _typer() -> typer.Typer:
    root = typer.Typer(
        name="lokifi-storage",
        help=(
            "Keep Lokifi's PostgreSQL, Redis Cluster and S3 storage at the state "
            "a LokifiStorage declares."
        ),
        no_args_is_help=True,
        add_completion=False,
    )
    root.callback()(_root)
    return root


def crd() -> None:
    """Print the LokifiStorage CRD generated from the models (crds/lokifistorage.yaml)."""
    from lokifi_storage.api.crd import crd_yaml

    typer.echo(crd_yaml(), nl=False)


def docs_api() -> None:
    """Print the LokifiStorage API reference generated from the models (docs/api.md)."""
    from lokifi_storage.api.reference import api_reference

    typer.echo(api_reference(), nl=False)


def version() -> None:
    """Print the operator's version."""
    typer.echo(__version__)


class LogLevel(StrEnum):
    """Levels `run --log-level` accepts (the names of Python's logging levels)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def run(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Serve this namespace (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Serve every namespace.")
    ] = False,
    resync_seconds: Annotated[
        float, typer.Option(min=1, help="Re-observe every resource this often to repair drift.")
    ] = 300,
    standalone: Annotated[
        bool, typer.Option(help="Do not take the leader-election Lease (one process only).")
    ] = False,
    lease_namespace: Annotated[
        str | None, typer.Option(help="Namespace of the Lease (default POD_NAMESPACE).")
    ] = None,
    lease_seconds: Annotated[
        int,
        typer.Option(min=3, help="A leader silent this long is replaced by a standby."),
    ] = 30,
    health_port: Annotated[
        int, typer.Option(help="Port of /healthz and /readyz; 0 turns them off.")
    ] = 8080,
    metrics_port: Annotated[
        int, typer.Option(help="Port of the Prometheus /metrics endpoint; 0 turns it off.")
    ] = 9090,
    workers: Annotated[int, typer.Option(min=1, help="Resources reconciled in parallel.")] = 4,
    shards: Annotated[
        int,
        typer.Option(
            min=1,
            help="2 or more: split the resources over the replicas by shard Leases instead of"
            " electing one leader.",
        ),
    ] = 1,
    max_connections_per_server: Annotated[
        int,
        typer.Option(
            min=1,
            help="Connections this process opens at most to one PostgreSQL server or Redis"
            " node, shared by every resource pointing at it.",
        ),
    ] = 10,
    job_image: Annotated[
        str | None,
        typer.Option(envvar=JOB_IMAGE_ENV, help="Image of the backup and vacuum CronJobs."),
    ] = None,
    log_level: Annotated[
        LogLevel,
        typer.Option(envvar="LOKIFI_LOG_LEVEL", case_sensitive=False, help="Least log severity."),
    ] = LogLevel.INFO,
) -> None:
    """Run the operator: reconcile every LokifiStorage it serves until SIGTERM."""
    import logging

    from lokifi_storage.domain.redaction import RedactingFilter
    from lokifi_storage.runtime.startup import RunOptions, run_operator

    if bool(namespace) == all_namespaces:
        typer.echo("error: pass --namespace NS (one or more) or --all-namespaces", err=True)
        raise typer.Exit(2)
    logging.basicConfig(
        level=log_level.value, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    options = RunOptions(
        namespaces=tuple(namespace or ()),
        all_namespaces=all_namespaces,
        resync_seconds=resync_seconds,
        standalone=standalone,
        lease_namespace=lease_namespace,
        lease_seconds=lease_seconds,
        health_port=health_port,
        metrics_port=metrics_port,
        workers=workers,
        max_connections_per_server=max_connections_per_server,
        shards=shards,
        job_image=job_image,
    )
    raise typer.Exit(run_operator(options))


def full_app() -> typer.Typer:
    """Every command, for `lokifi-storage --help` and every command but `migrate`."""
    from lokifi_storage.admin import plan_cli
    from lokifi_storage.jobs import backup_cli, migrate_cli, partitions_cli, vacuum

    root = _typer()
    root.command()(crd)
    docs_app = typer.Typer(
        help="Print documentation generated from the code.", no_args_is_help=True
    )
    docs_app.command("api")(docs_api)
    root.add_typer(docs_app, name="docs")
    root.command()(version)
    root.add_typer(backup_cli.app, name="backup")
    root.command("restore")(backup_cli.restore)
    root.command("vacuum")(vacuum.vacuum)
    root.add_typer(partitions_cli.app, name="partitions")
    root.command("plan")(plan_cli.plan)
    root.add_typer(migrate_cli.app, name="migrate")
    root.command()(run)
    return root


def migrate_app() -> typer.Typer:
    """`lokifi-storage migrate ...` alone: importing every other command's modules (the
    operator, Kubernetes, S3, Redis) cost the migration about a CPU-second before its first
    row, for nothing."""
    from lokifi_storage.jobs import migrate_cli

    root = _typer()
    root.add_typer(migrate_cli.app, name="migrate")
    return root


def __getattr__(name: str) -> typer.Typer:
    """`app`, every command (the tests' CliRunner), made on first use."""
    if name == "app":
        app = full_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point."""
    (migrate_app() if sys.argv[1:2] == ["migrate"] else full_app())()
