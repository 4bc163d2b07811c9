"""The `lokifi-storage` command: what admins, CronJobs and the operator's Deployment run.

Each command group lives beside the layer it drives; this module only wires them together so
`lokifi-storage --help` lists everything in one place.
"""

from __future__ import annotations

import typer

from lokifi_storage.jobs import backup_cli

app = typer.Typer(
    name="lokifi-storage",
    help="Keep Lokifi's PostgreSQL, Redis Cluster and S3 storage at the state a LokifiStorage declares.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Keep Lokifi's storage stack at the state a LokifiStorage declares."""


@app.command()
def version() -> None:
    """Print the operator's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("lokifi-storage-operator"))


app.add_typer(backup_cli.app, name="backup")
app.command("restore")(backup_cli.restore)


def main() -> None:
    """Console-script entry point."""
    app()
