"""What every step of `migrate sqlite` shares: the options, the exit codes and the error that
carries them, what is decided about each table before anything is written, and the results.

Its own module so that the steps (jobs/migrate_checks.py, migrate_partitions.py,
migrate_finish.py, migrate_verify.py) and the run that strings them together
(jobs/migrate_run.py) import one definition of each without importing one another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.migrate_plan import ArchiveRouter
from lokifi_storage.domain.migrate_schema import SourceTable, TargetTable
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.jobs.outcome import JobError

__all__ = [
    "EXIT_INCOMPATIBLE",
    "EXIT_LOCKED",
    "EXIT_MISMATCH",
    "EXIT_MISSING_TABLE",
    "EXIT_NOT_SQLITE",
    "EXIT_REJECTS",
    "MAX_PARTITION_PASSES",
    "DecidedTable",
    "MigrateError",
    "MigrateOptions",
    "MigrateSummary",
    "TableResult",
]

EXIT_NOT_SQLITE = 3
EXIT_MISMATCH = 4
EXIT_MISSING_TABLE = 5
EXIT_LOCKED = 6
EXIT_INCOMPATIBLE = 7
EXIT_REJECTS = 8

MAX_PARTITION_PASSES = 20


class MigrateError(JobError):
    """A migration that cannot start or did not verify; `exit_code` tells which."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message, reason="MigrateFailed")
        self.exit_code = exit_code


@dataclass(frozen=True)
class MigrateOptions:
    sqlite_path: Path
    url: str
    tables: Sequence[TableSpec] = ()
    verify: bool = True
    dry_run: bool = False
    chunk_rows: int = 20_000
    chunk_bytes: int = 32 * 1024 * 1024
    writers: int = 2
    converters: int = 0  # processes reading and converting rows (0: a thread of this one)
    busy_timeout_ms: int = 5_000
    check_integrity: bool = True
    now: dt.datetime | None = None
    # How the writers compress long values (TOAST): lz4 costs the server a fraction of pglz's
    # CPU, and the load is bound by the server's CPU; None leaves the server's default.
    toast_compression: str | None = "lz4"


@dataclass
class TableResult:
    source: str
    target: QName
    source_rows: int
    copied: int = 0
    rejected: int = 0
    created: bool = False
    partitions: int = 0
    archived_partitions: int = 0
    verified: bool | None = None
    mismatch: str | None = None


@dataclass
class MigrateSummary:
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables)

    @property
    def exit_code(self) -> int:
        if any(t.verified is False for t in self.tables):
            return EXIT_MISMATCH
        if self.rejected:
            return EXIT_REJECTS
        return 0


@dataclass
class DecidedTable:
    """One SQLite table and everything decided about its target."""

    source: SourceTable
    spec: TableSpec | None
    target: TargetTable
    rows: int
    buckets: dict[dt.datetime, int] = field(default_factory=dict)
    archive: QName | None = None
    router: ArchiveRouter | None = None
    key: tuple[str, ...] = ()  # the primary key a created table gets
    owned: bool = False  # created by this migration (now or by an earlier run)

    @property
    def deferred_spec(self) -> TableSpec | None:
        """The spec the partitions are made with before the rows: without its indexes when
        the table is the migration's own (they are built after the rows)."""
        if self.spec is None or not self.owned or not self.spec.indexes:
            return self.spec
        return self.spec.model_copy(update={"indexes": []})

    @property
    def relations(self) -> list[QName]:
        return [self.target.qname, *([self.archive] if self.archive else [])]
