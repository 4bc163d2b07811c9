"""Pack archived months (and unpack them back), and report what it saved.

The work itself is one transaction per month (domain/partitions/pack_steps.py): build the other
form, verify it against the old one (row count and a digest of every column of every row),
swap. Here: make sure the packed table, its view and its read function exist (once per table,
only when missing), run the step, and measure the month before and after (heap + TOAST +
indexes, sub-partitions included). bench/RESULTS.md has measured numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from lokifi_storage.clients.postgres.partitions import PartitionDatabase
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.pack import PackPartition, UnpackPartition
from lokifi_storage.domain.partitions.pack_layout import PackLayout
from lokifi_storage.domain.partitions.pack_steps import (
    ensure_steps,
    pack_steps,
    read_path_statements,
    unpack_steps,
)
from lokifi_storage.domain.partitions.statements import Step

__all__ = ["PackResult", "ensure_packed_table", "pack_month", "unpack_month"]


@dataclass(frozen=True)
class PackResult:
    month: str
    rows: int
    bytes_before: int
    bytes_after: int

    @property
    def ratio(self) -> float:
        return self.bytes_before / self.bytes_after if self.bytes_after else 0.0


def _exists(db: PartitionDatabase, kind: str, name: QName) -> bool:
    text = sql.Identifier(name.schema, name.name).as_string(db.conn)
    lookup = "to_regclass" if kind == "relation" else "to_regproc"
    rows = db.query(
        sql.SQL("SELECT {}(%(name)s) IS NOT NULL").format(sql.SQL(lookup)), {"name": text}
    )
    return bool(rows[0][0])


def ensure_packed_table(db: PartitionDatabase, layout: PackLayout) -> bool:
    """Create what is missing of the packed table, the view and the function; True if any
    DDL was sent. Nothing is sent when all three exist."""
    if not _exists(db, "relation", layout.archive):
        return False  # nothing archived yet: the view would have nothing to read
    if not _exists(db, "relation", layout.parent):
        for step in ensure_steps(layout):
            db.run_step(step, f"create {layout.parent} and its view {layout.view}")
        return True
    if _exists(db, "relation", layout.view) and _exists(db, "function", layout.function):
        return False
    step = Step(tuple(read_path_statements(layout)), lock_target=layout.archive)
    db.run_step(step, f"create the view {layout.view} and the function {layout.function}")
    return True


def _packed_rows(db: PartitionDatabase, month: QName) -> int:
    rows = db.query(
        sql.SQL("SELECT coalesce(sum(lokifi_rows), 0) FROM {}").format(
            sql.Identifier(month.schema, month.name)
        )
    )
    return int(rows[0][0])


def pack_month(db: PartitionDatabase, action: PackPartition) -> PackResult:
    """Pack one archived month; verified inside the swap transaction."""
    ensure_packed_table(db, action.layout)
    before = db.relation_bytes(action.month)
    for step in pack_steps(action):
        db.run_step(step, action.describe())
    return PackResult(
        month=str(action.month),
        rows=_packed_rows(db, action.month),
        bytes_before=before,
        bytes_after=db.relation_bytes(action.month),
    )


def unpack_month(db: PartitionDatabase, action: UnpackPartition) -> PackResult:
    """Restore one packed month to an ordinary partition; verified inside the swap."""
    before = db.relation_bytes(action.packed)
    for step in unpack_steps(action):
        db.run_step(step, action.describe())
    return PackResult(
        month=str(action.month.qname),
        rows=db.count_rows(action.month.qname),
        bytes_before=before,
        bytes_after=db.relation_bytes(action.month.qname),
    )
