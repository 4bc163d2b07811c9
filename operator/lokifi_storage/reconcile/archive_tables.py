"""The archive-tables part: nothing to reconcile, only what deletionPolicy Delete removes.

Archive tables are created by the partitions part when a table declares `archive`; they are a
part of their own only for the cleanup, which drops each one while it is empty (a table still
holding a partition or a row is kept: clients/postgres/cleanup.py).
"""

from __future__ import annotations

from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.clients.postgres.cleanup import drop_empty_archive_tables
from lokifi_storage.reconcile.parts import Part, PartContext
from lokifi_storage.reconcile.report import PartReport

__all__ = ["PART", "ArchiveTablesPart"]


class ArchiveTablesPart:
    """The archive tables of spec.postgres.tables; no condition, no status block."""

    name = "archive-tables"
    conditions: tuple[str, ...] = ()
    status_keys: tuple[str, ...] = ()

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.postgres is not None and any(
            t.archive is not None for t in spec.postgres.tables
        )

    def run(self, ctx: PartContext) -> list[PartReport]:
        return []

    def cleanup(self, ctx: PartContext) -> list[str]:
        postgres = ctx.spec.postgres
        assert postgres is not None
        url = ctx.secrets.value(postgres.primary.secretRef)
        archives = [
            (table.archive.schema_, table.name.rpartition(".")[2])
            for table in postgres.tables
            if table.archive is not None
        ]
        return drop_empty_archive_tables(url, archives, ctx.fence.check) if archives else []

    def release(self, ctx: PartContext) -> list[str]:
        return []  # the partitions part holds the tables' claims


PART: Part = ArchiveTablesPart()
