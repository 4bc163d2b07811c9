"""Step 5 of `migrate sqlite`, the verification (default on): per table, the source's row count
equals rows copied plus rows rejected, and count and digest of the target equal those of the
converted source rows.

Its own module because it runs in a thread of its own, on connections of its own, beside step 4
(jobs/migrate_finish.py), and touches nothing but reads and the results it fills in.
"""

from __future__ import annotations

import threading

from lokifi_storage.clients.migrate_target import MigrateTarget
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_chunks import Checkpoint
from lokifi_storage.domain.migrate_schema import TargetColumn
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.jobs.migrate_convert import RowConverter
from lokifi_storage.jobs.migrate_keys import share_out
from lokifi_storage.jobs.migrate_options import DecidedTable, MigrateOptions, TableResult
from lokifi_storage.jobs.progress import Reporter

__all__ = ["Verification"]


class Verification:
    """The verification, on connections of its own in a thread, while keys, indexes and
    foreign keys are built: it only reads rows (COPY TO takes no lock an index build or a
    foreign key check waits for), and the two use different resources (the hashing here,
    sorting on the server)."""

    def __init__(
        self,
        source: SqliteSource,
        options: MigrateOptions,
        tables: list[DecidedTable],
        results: list[TableResult],
        checkpoints: dict[str, Checkpoint],
        reporter: Reporter,
    ) -> None:
        self.error: BaseException | None = None
        self.args = (source, options, tables, results, checkpoints, reporter)
        self.thread = threading.Thread(target=self._run, name="migrate-verify", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        source, options, tables, results, checkpoints, reporter = self.args
        connections: list[MigrateTarget] = []
        try:
            for _ in range(max(options.writers, 1)):
                connections.append(MigrateTarget.open(options.url))
            for table, result in zip(tables, results, strict=True):
                point = checkpoints[table.source.name]
                _verify(source, connections, table, point, result, reporter)
        except BaseException as error:
            self.error = error
        finally:
            for connection in connections:
                connection.close()

    def join(self, *, quiet: bool = False) -> None:
        """Wait for it; its error is raised unless `quiet` (another one is on its way)."""
        self.thread.join()
        if self.error is not None and not quiet:
            raise self.error


def _target_digest(
    connections: list[MigrateTarget], relations: list[QName], columns: list[TargetColumn]
) -> tuple[int, int]:
    """Count and digest over every leaf of `relations`, the leaves (one COPY TO each) shared
    out among the connections."""
    sums = share_out(
        connections, connections[0].leaves(relations), lambda c, leaf: c.digest(leaf, columns)
    )
    return sum(c for c, _ in sums), sum(d for _, d in sums)


def _verify(
    source: SqliteSource,
    connections: list[MigrateTarget],
    table: DecidedTable,
    point: Checkpoint,
    result: TableResult,
    reporter: Reporter,
) -> None:
    target = connections[0]
    expected_digest = point.digest
    if expected_digest is None:
        expected_digest = _source_digest(source, table, target)
    columns = [table.target.column(c.name) for c in table.source.copied]
    count, digest = _target_digest(
        connections, table.relations, [c for c in columns if c is not None]
    )
    problems = []
    if table.rows != point.rows_copied + point.rows_rejected:
        problems.append(
            f"SQLite has {table.rows} rows, {point.rows_copied} copied + {point.rows_rejected} "
            "rejected"
        )
    if count != point.rows_copied:
        problems.append(f"{count} rows in PostgreSQL, {point.rows_copied} copied")
    elif digest != expected_digest:
        problems.append("row digests differ (a value changed on the way)")
    result.verified = not problems
    result.mismatch = "; ".join(problems) or None
    if problems:
        reporter.info(f"VERIFY FAILED {table.target.qname}: {result.mismatch}")
    else:
        shown = digest & 0xFFFFFFFFFFFFFFFF
        reporter.info(f"verified {table.target.qname}: {count} rows, digest {shown:016x}")


def _source_digest(source: SqliteSource, table: DecidedTable, target: MigrateTarget) -> int:
    """The source side's digest recomputed (an earlier run loaded without hashing), skipping
    the rows the rejects table names."""
    refused = target.rejected_rowids(table.source.name)
    converter = RowConverter(table.source, table.target, hashed=True)
    total = 0
    for rows in source.rows(table.source, None):
        block = converter.block([r for r in rows if r[-1] not in refused])
        for route in block.routes.values():
            total += sum(route.hashes)
    return total
