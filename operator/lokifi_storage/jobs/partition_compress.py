"""Rewrite archived partitions with lz4 compression, and measure what it saved.

The rewrite itself is the CompressPartition action (clients/partition_sql.py): one transaction
that copies the leaf into a table whose large columns are lz4 (values recomputed, so they are
really recompressed), verifies the row count, builds the indexes and swaps it in. Here: run it
per leaf and report the real size before and after (heap + TOAST + indexes). PostgreSQL only
compresses rows longer than about 2 kB, so the saving depends on how many long messages a
partition holds; bench/RESULTS.md has measured numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from lokifi_storage.clients.postgres import PartitionDatabase
from lokifi_storage.domain.partition_actions import CompressPartition

__all__ = ["CompressResult", "compress_leaf"]


@dataclass(frozen=True)
class CompressResult:
    leaf: str
    rows: int
    bytes_before: int
    bytes_after: int

    @property
    def ratio(self) -> float:
        return self.bytes_before / self.bytes_after if self.bytes_after else 0.0


def compress_leaf(db: PartitionDatabase, action: CompressPartition) -> CompressResult:
    """Compress one archived leaf; the row count is checked inside the rewrite transaction."""
    before = db.relation_bytes(action.leaf)
    rows = db.count_rows(action.leaf)
    db.apply(action)
    return CompressResult(
        leaf=str(action.leaf),
        rows=rows,
        bytes_before=before,
        bytes_after=db.relation_bytes(action.leaf),
    )
