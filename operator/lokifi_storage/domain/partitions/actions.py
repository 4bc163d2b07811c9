"""The actions the partition planner decides on: typed, ordered, and each able to say what it does.

Actions are data. domain/partitions/steps.py turns each into SQL (quoted with psycopg.sql), the
reconciler executes the immediate ones in order, and the `deferred` ones (compression and
export: long, heavy rewrites and uploads) are left for `lokifi-storage partitions compress` /
`export`, which run as Jobs. `describe()` is the sentence shown in `plan` output and Events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lokifi_storage.domain.partitions.catalog import Bound, QName
from lokifi_storage.domain.partitions.export_layout import manifest_key
from lokifi_storage.domain.partitions.index_defs import IndexDef
from lokifi_storage.domain.partitions.pack_layout import PackLayout

__all__ = [
    "Action",
    "ArchivePartition",
    "AttachIndex",
    "AttachOrphan",
    "BuildIndex",
    "CreateArchiveTable",
    "CreateParentIndex",
    "CreatePartition",
    "DropInvalidIndex",
    "DropPartition",
    "ExportPartition",
    "FinalizeDetach",
    "NewRelation",
]


def _bound_text(bound: Bound) -> str:
    if bound.is_default:
        return "DEFAULT"
    return f"[{bound.lower}, {bound.upper})"


@dataclass(frozen=True)
class Action:
    """Base of every action. `table` is the managed table the action belongs to."""

    table: QName

    deferred: ClassVar[bool] = False  # True: planned here, carried out by a CLI Job

    def describe(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class NewRelation:
    """A partition to create; itself partitioned on `sub_column` when it has children."""

    qname: QName
    bound: Bound
    sub_column: str | None = None
    children: tuple[NewRelation, ...] = ()

    def all_relations(self) -> list[NewRelation]:
        return [self, *(r for child in self.children for r in child.all_relations())]


@dataclass(frozen=True)
class CreatePartition(Action):
    """Create `partition` standalone, move the rows of its range out of the parent's DEFAULT
    partition, build its indexes while nobody can see it, then ATTACH it: one transaction.

    `move_from` is the parent's DEFAULT partition (None when the parent has none or the new
    partition is the DEFAULT itself). `columns` are the insertable columns, in order.
    """

    parent: QName
    partition: NewRelation
    column: str
    move_from: QName | None
    columns: tuple[str, ...]
    indexes: tuple[IndexDef, ...]
    rows_to_move: int = 0

    def describe(self) -> str:
        what = "DEFAULT partition" if self.partition.bound.is_default else "partition"
        text = f"create {what} {self.partition.qname} of {self.parent}"
        if not self.partition.bound.is_default:
            text += f" for {_bound_text(self.partition.bound)}"
        if self.partition.children:
            text += f" with {len(self.partition.children)} sub-partitions"
        if self.rows_to_move:
            text += f", moving {self.rows_to_move} rows out of {self.move_from}"
        return text


@dataclass(frozen=True)
class CreateArchiveTable(Action):
    """Create `<archive schema>.<table>`: partitioned like the table, with the spec's indexes."""

    source: QName
    archive: QName
    column: str
    indexes: tuple[IndexDef, ...]

    def describe(self) -> str:
        return f"create archive table {self.archive} (PARTITION BY RANGE ({self.column}))"


@dataclass(frozen=True)
class CreateParentIndex(Action):
    """CREATE INDEX ... ON ONLY a partitioned table: instant; it stays INVALID until every
    partition has its own index attached."""

    relation: QName
    index: IndexDef
    name: str

    def describe(self) -> str:
        return f"create index {self.name} on only {self.relation}"


@dataclass(frozen=True)
class BuildIndex(Action):
    """CREATE INDEX CONCURRENTLY on one leaf partition or on a plain table."""

    relation: QName
    index: IndexDef
    name: str

    def describe(self) -> str:
        return f"build index {self.name} concurrently on {self.relation}"


@dataclass(frozen=True)
class DropInvalidIndex(Action):
    """DROP INDEX CONCURRENTLY an INVALID index left by an interrupted concurrent build."""

    index: QName

    def describe(self) -> str:
        return f"drop invalid index {self.index} (left by an interrupted build)"


@dataclass(frozen=True)
class AttachIndex(Action):
    """ALTER INDEX parent ATTACH PARTITION child: metadata only."""

    parent_index: QName
    child_index: QName

    def describe(self) -> str:
        return f"attach index {self.child_index} to {self.parent_index}"


@dataclass(frozen=True)
class FinalizeDetach(Action):
    """Finish a DETACH ... CONCURRENTLY that was interrupted."""

    parent: QName
    partition: QName

    def describe(self) -> str:
        return f"finalize the interrupted detach of {self.partition} from {self.parent}"


@dataclass(frozen=True)
class ArchivePartition(Action):
    """Move a whole partition to the archive table: no row is copied.

    Every partition the operator creates is born with a valid bounds CHECK (added while it
    is empty), so the ATTACH below needs no scan and archival is metadata only. A partition
    made otherwise first gets the CHECK added NOT VALID and VALIDATEd (a scan that blocks
    neither reads nor writes). Then, in one transaction: DETACH (CONCURRENTLY when the parent
    has no DEFAULT partition, otherwise plain under a short lock_timeout, retried), SET
    SCHEMA to the archive schema, ATTACH to the archive table.
    """

    parent: QName
    partition: QName
    archive: QName
    column: str
    bound: Bound
    leaves_needing_check: tuple[QName, ...]  # leaves without the bounds CHECK at all
    leaves_to_validate: tuple[QName, ...]  # leaves whose bounds CHECK is not validated yet
    descendants: tuple[QName, ...]  # sub-partitions that move schema with it
    concurrently: bool
    marked: bool = False  # carries the archive marker already (an earlier attempt set it)

    def describe(self) -> str:
        how = "concurrently" if self.concurrently else "under a short lock_timeout"
        return (
            f"archive {self.partition} {_bound_text(self.bound)}: detach from {self.parent} "
            f"({how}) and attach to {self.archive}"
        )


@dataclass(frozen=True)
class AttachOrphan(Action):
    """A partition detached by an interrupted archive run: attach it to the archive table."""

    orphan: QName
    archive: QName
    column: str
    bound: Bound
    descendants: tuple[QName, ...]

    def describe(self) -> str:
        return f"attach detached partition {self.orphan} to {self.archive}"


@dataclass(frozen=True)
class ExportPartition(Action):
    """Export a partition past retention to S3, verify the object, then drop the partition."""

    parent: QName
    partition: QName
    bound: Bound
    bucket: str
    key: str
    storage_class: str
    source: str = ""  # the server's system_identifier, part of `key`
    database: str = ""
    unpack: PackLayout | None = None  # a packed month: exported as its original rows

    deferred: ClassVar[bool] = True

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.key)

    def describe(self) -> str:
        return (
            f"export {self.partition} {_bound_text(self.bound)} to s3://{self.bucket}/{self.key}"
            f" ({self.storage_class}), verify, then drop it; run `lokifi-storage partitions export`"
        )


@dataclass(frozen=True)
class DropPartition(Action):
    """Drop a partition past retention; planned only when the spec says dropWithoutExport, or
    by the export job once the exported object is verified."""

    parent: QName
    partition: QName
    bound: Bound

    def describe(self) -> str:
        return f"drop {self.partition} {_bound_text(self.bound)} (past retention)"
