"""`lokifi-storage vacuum`: VACUUM (ANALYZE) the listed tables partition by partition.

Run by the vacuum CronJob (spec.maintenance.vacuum) and by admins. Every statement is timed and
printed; a relation whose lock is not granted within --lock-timeout is skipped (and named) and
the run goes on with the rest.

Exit codes: 0 every relation done; 3 at least one relation skipped for a lock timeout (the
rest done); 5 a listed table does not exist (the rest done); 1 the database could not be
reached or a statement failed otherwise; 2 usage. When several apply: 1 before 5 before 3.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Annotated

import typer

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError, LockTimeout, RelationGone
from lokifi_storage.clients.postgres.vacuum import VacuumSession
from lokifi_storage.domain.job_env import PRIMARY_URL_ENV
from lokifi_storage.domain.job_runs import VACUUM_JOB
from lokifi_storage.domain.vacuum_plan import TableName, parse_table_name, plan_vacuum
from lokifi_storage.jobs.outcome import TerminatedError, job_run, sigterm_raises
from lokifi_storage.jobs.progress import Reporter

__all__ = ["EXIT_LOCK_TIMEOUT", "EXIT_TABLE_NOT_FOUND", "VacuumResult", "run_vacuum", "vacuum"]

EXIT_LOCK_TIMEOUT = 3
EXIT_TABLE_NOT_FOUND = 5


@dataclass
class VacuumResult:
    done: list[tuple[str, float]] = field(default_factory=list)
    lock_timeouts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.missing:
            return EXIT_TABLE_NOT_FOUND
        if self.lock_timeouts:
            return EXIT_LOCK_TIMEOUT
        return 0


def run_vacuum(
    url: str,
    tables: list[TableName],
    *,
    analyze: bool,
    lock_timeout_seconds: float,
    reporter: Reporter,
) -> VacuumResult:
    """Plan against the catalog, then run each step; raises ClientError for hard failures."""
    result = VacuumResult()
    started = time.monotonic()
    with VacuumSession.open(url, lock_timeout_seconds=lock_timeout_seconds) as session:
        if not tables:
            tables = session.all_tables()
            reporter.info(f"no tables listed: vacuuming all {len(tables)} tables")
        steps, missing = plan_vacuum(tables, session.resolve(tables), analyze=analyze)
        result.missing = [str(name) for name in missing]
        for name in missing:
            reporter.info(f"table {name} does not exist on {session.target}: skipped")
        for step in steps:
            try:
                seconds = session.run(step)
            except LockTimeout as error:
                result.lock_timeouts.append(step.qualified)
                reporter.info(f"SKIPPED {error}")
                continue
            except RelationGone as error:
                result.gone.append(step.qualified)
                reporter.info(f"SKIPPED {error}")
                continue
            result.done.append((step.describe(), seconds))
            reporter.info(f"{step.describe()}: {seconds:.2f}s")
    result.seconds = time.monotonic() - started
    summary = f"{len(result.done)} statement(s) in {result.seconds:.1f}s"
    if result.lock_timeouts:
        summary += f"; lock timeout on {', '.join(result.lock_timeouts)}"
    if result.missing:
        summary += f"; not found: {', '.join(result.missing)}"
    reporter.info(f"vacuum finished: {summary}")
    return result


def vacuum(
    tables: Annotated[
        list[str],
        typer.Option(
            help="Table to vacuum, as schema.table or table (search_path); repeat the flag or "
            "separate names with commas. "
            "Partitioned tables are vacuumed partition by partition. "
            "Without it, every user table of the database.",
        ),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    analyze: Annotated[
        bool, typer.Option(help="Also refresh planner statistics (ANALYZE).")
    ] = True,
    lock_timeout: Annotated[
        float,
        typer.Option(min=0.001, help="Seconds to wait for each relation's lock before skipping."),
    ] = 5.0,
    url_env: Annotated[
        str, typer.Option(help="Environment variable holding the primary's URL.")
    ] = PRIMARY_URL_ENV,
) -> None:
    """VACUUM (ANALYZE) tables and their partitions with timings and a lock timeout.

    The database URL is read from LOKIFI_PRIMARY_URL (or --url-env), never from a flag.
    Exit codes: 0 done, 1 failure, 2 usage, 3 a lock timeout skipped some relation,
    5 a listed table does not exist.
    """
    url = os.environ.get(url_env)
    if not url:
        typer.echo(f"error: set {url_env} to the database URL (postgresql://...)", err=True)
        raise typer.Exit(2)
    try:
        names = [parse_table_name(n) for value in tables for n in value.split(",") if n.strip()]
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    reporter = Reporter()
    with job_run(VACUUM_JOB, url) as note:
        try:
            with sigterm_raises():
                result = run_vacuum(
                    url,
                    names,
                    analyze=analyze,
                    lock_timeout_seconds=lock_timeout,
                    reporter=reporter,
                )
        except TerminatedError as stop:
            typer.echo(f"error: {stop}", err=True)
            raise typer.Exit(stop.exit_code) from None
        except ClientError as error:
            typer.echo(f"error: {error}", err=True)
            note.fail(error.reason, error.message)
            raise typer.Exit(1) from None
        if result.exit_code:
            note.fail(Reason.JOB_FAILED, f"vacuum ended with exit code {result.exit_code}")
        raise typer.Exit(result.exit_code)
