"""`lokifi-storage migrate sqlite SQLITE_FILE -f resource.yaml`: day-zero move from SQLite.

The database URL comes from LOKIFI_PRIMARY_URL (or the variable --url-env names), as for the
other jobs; the tables to partition from the resource given with -f (or LOKIFI_TABLES_JSON).

Exit codes:
    0  every row copied (and verified, unless --no-verify)
    1  failure: PostgreSQL unreachable, a statement failed
    2  usage
    3  the file is not a SQLite database, or is damaged
    4  verification failed: a table's count or digest differs (the table is named)
    5  a table the resource declares is not in the SQLite file
    6  the SQLite database is locked by another process
    7  a target table does not fit (a column missing or of another type, rows already there)
    8  done and verified, but rows were rejected (see lokifi_migrate.rejects)
  143  terminated by SIGTERM; a re-run continues from the last committed chunk
Codes 3, 5, 6 and 7 are found before anything is written.
"""

from __future__ import annotations

import datetime as dt
import gc
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lokifi_storage.domain.job_env import PRIMARY_URL_ENV as DEFAULT_URL_ENV
from lokifi_storage.jobs.migrate_options import MigrateError, MigrateOptions
from lokifi_storage.jobs.migrate_run import run_migrate
from lokifi_storage.jobs.outcome import TerminatedError, sigterm_raises
from lokifi_storage.jobs.partitions_args import load_spec
from lokifi_storage.jobs.progress import Reporter

__all__ = ["app"]


class ToastCompression(StrEnum):
    """Choices of `--toast-compression`."""

    LZ4 = "lz4"
    PGLZ = "pglz"
    SERVER = "server"


app = typer.Typer(
    name="migrate",
    help="Move an existing database into the PostgreSQL a LokifiStorage manages.",
    no_args_is_help=True,
)


@app.command("sqlite")
def sqlite(
    sqlite_file: Annotated[Path, typer.Argument(help="The app's SQLite database file.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="LokifiStorage manifest (or its spec) naming the tables."
        ),
    ] = None,
    url_env: Annotated[
        str, typer.Option(help="Environment variable holding the primary's URL (with password).")
    ] = DEFAULT_URL_ENV,
    verify: Annotated[
        bool, typer.Option(help="Compare row counts and digests of every table at the end.")
    ] = True,
    dry_run: Annotated[
        bool, typer.Option(help="Print tables, types, partitions and row counts; change nothing.")
    ] = False,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows per committed chunk (one checkpoint each).")
    ] = 20_000,
    writers: Annotated[
        int, typer.Option(min=1, max=16, help="Connections loading chunks in parallel.")
    ] = 2,
    converters: Annotated[
        int,
        typer.Option(
            min=0,
            max=16,
            help="Processes reading and converting rows; 0 (the default): one thread of this "
            "process, which measured faster on a busy 2-core machine (bench/RESULTS.md).",
        ),
    ] = 0,
    busy_timeout_ms: Annotated[
        int, typer.Option(min=0, help="How long to wait for a lock on the SQLite file.")
    ] = 5_000,
    integrity_check: Annotated[
        bool, typer.Option(help="Run SQLite's quick_check on the file before anything else.")
    ] = True,
    now: Annotated[
        str | None,
        typer.Option(help="Plan partitions as if it were this ISO 8601 instant (default: now)."),
    ] = None,
    toast_compression: Annotated[
        ToastCompression,
        typer.Option(
            case_sensitive=False,
            help="How long values (TOAST) are compressed as they are loaded: lz4 (the "
            "default; much less of the server's CPU than pglz, slightly larger), pglz, or "
            "server (the server's default_toast_compression). The columns keep the server's "
            "default for later writes; without lz4 in the server, its default is used.",
        ),
    ] = ToastCompression.LZ4,
) -> None:
    """Copy every row of SQLITE_FILE into the managed PostgreSQL, partitioned and verified.

    Tables the resource declares with partitionBy get their partitions (old months straight
    into the archive) before any row arrives. Resumable: a re-run after a crash continues from
    the last committed chunk. Exit codes: 0 ok, 1 failure, 2 usage, 3 not SQLite/corrupt,
    4 verification failed, 5 declared table missing, 6 SQLite locked, 7 target table does not
    fit, 8 rows rejected.
    """
    import os

    tables, _ = load_spec(file)
    url = os.environ.get(url_env)
    if not url:
        typer.echo(f"error: set {url_env} to the primary's URL (postgresql://...)", err=True)
        raise typer.Exit(2)
    moment = None
    if now is not None:
        try:
            moment = dt.datetime.fromisoformat(now)
        except ValueError:
            typer.echo(f"error: --now {now!r} is not an ISO 8601 instant", err=True)
            raise typer.Exit(2) from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    options = MigrateOptions(
        sqlite_path=sqlite_file,
        url=url,
        tables=tables,
        verify=verify,
        dry_run=dry_run,
        chunk_rows=chunk_rows,
        writers=writers,
        converters=converters,
        busy_timeout_ms=busy_timeout_ms,
        check_integrity=integrity_check,
        now=moment,
        toast_compression=(
            None if toast_compression is ToastCompression.SERVER else toast_compression.value
        ),
    )
    reporter = Reporter()
    try:
        with sigterm_raises():
            # The objects made so far (modules, the schema) live until the end: leave them out
            # of the collector's passes, and let it run less often, over millions of rows.
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            summary = run_migrate(options, reporter)
    except MigrateError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    except TerminatedError as error:
        typer.echo("terminated: a re-run continues from the last committed chunk", err=True)
        raise typer.Exit(error.exit_code) from None
    if dry_run:
        return
    for table in summary.tables:
        state = {True: "verified", False: f"MISMATCH: {table.mismatch}", None: "not verified"}
        reporter.info(
            f"{table.source} -> {table.target}: {table.copied} rows copied, "
            f"{table.rejected} rejected, {state[table.verified]}"
        )
    rate = summary.copied / summary.seconds if summary.seconds else 0.0
    reporter.info(
        f"done in {summary.seconds:.1f}s: {summary.copied} rows copied ({rate:,.0f} rows/s), "
        f"{summary.rejected} rejected"
        + (" (see lokifi_migrate.rejects)" if summary.rejected else "")
    )
    code = summary.exit_code
    if code:
        mismatched = [str(t.target) for t in summary.tables if t.verified is False]
        if mismatched:
            typer.echo(f"error: verification failed for {', '.join(mismatched)}", err=True)
        raise typer.Exit(code)
