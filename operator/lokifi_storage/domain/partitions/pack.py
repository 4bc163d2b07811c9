"""The pack and unpack actions of an archived month (see pack_layout.py). Pure data;
pack_steps.py turns them into SQL, jobs/partition_compress.py runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.actions import Action, NewRelation
from lokifi_storage.domain.partitions.catalog import Bound, ObservedTable, QName
from lokifi_storage.domain.partitions.index_defs import IndexDef, index_def_from_spec
from lokifi_storage.domain.partitions.pack_layout import PackLayout, layout_problem, stored_segment
from lokifi_storage.domain.partitions.plan_create import month_children

__all__ = ["PackPartition", "UnpackPartition", "month_relation", "plan_unpack", "table_layout"]


@dataclass(frozen=True)
class PackPartition(Action):
    """Pack one archived month, verify the packed form holds exactly its rows (count and a
    digest of every column of every row), then swap: one transaction."""

    month: QName  # the archived partition (partitioned itself when sub-partitioned)
    bound: Bound
    layout: PackLayout

    deferred: ClassVar[bool] = True

    def describe(self) -> str:
        return (
            f"pack {self.month} [{self.bound.lower}, {self.bound.upper}) into "
            f"{self.layout.parent} by {', '.join(self.layout.segment)} "
            f"({self.layout.compression}); run `lokifi-storage partitions compress`"
        )


@dataclass(frozen=True)
class UnpackPartition(Action):
    """Restore a packed month to an ordinary partition of the archive table (with the spec's
    sub-partitions and indexes), verified like packing: one transaction."""

    packed: QName  # the packed month, a partition of layout.parent
    month: NewRelation  # the ordinary partition to create, with its sub-partitions
    layout: PackLayout
    indexes: tuple[IndexDef, ...]

    def describe(self) -> str:
        bound = self.month.bound
        return (
            f"unpack {self.packed} [{bound.lower}, {bound.upper}) back into {self.layout.archive}"
        )


def month_relation(spec: TableSpec, month: QName, bound: Bound) -> NewRelation:
    """The ordinary partition a month is restored to: sub-partitioned as the spec says now,
    named as the partition planner names them."""
    sub = spec.subpartitionBy
    if sub is None:
        return NewRelation(month, bound)
    return NewRelation(month, bound, sub.column, month_children(month, sub))


def plan_unpack(spec: TableSpec, observed: ObservedTable, month: str) -> UnpackPartition:
    """The UnpackPartition for the packed month named `month` (as `<table>_p2024_10`, or
    schema-qualified); ValueError saying what is wrong otherwise."""
    if spec.archive is None or spec.partitionBy is None:
        raise ValueError(f"table {spec.name} has no archive in the spec")
    table = QName.parse(spec.name)
    archive = QName(spec.archive.schema_, table.name)
    wanted = QName.parse(month, default_schema=archive.schema)
    packed = observed.packed
    found = next((c for c in packed.children if c.qname == wanted), None) if packed else None
    if packed is None or found is None or found.bound is None or found.bound.lower is None:
        names = ", ".join(c.qname.name for c in packed.children) if packed else ""
        raise ValueError(
            f"{wanted} is not a packed month of {archive}"
            + (f"; packed months: {names}" if names else "; nothing is packed")
        )
    if observed.relation is None:
        raise ValueError(f"table {table} does not exist")
    indexes = tuple(index_def_from_spec(i) for i in spec.indexes)
    layout = PackLayout(
        archive=archive,
        columns=observed.relation.columns,
        segment=stored_segment(packed.comment),
        time_column=spec.partitionBy.column,
    )
    return UnpackPartition(
        table,
        packed=found.qname,
        month=month_relation(spec, found.qname, found.bound),
        layout=layout,
        indexes=indexes,
    )


def table_layout(spec: TableSpec, observed: ObservedTable) -> PackLayout | None:
    """How `spec`'s months are (or will be) packed, when it packs at all and the table allows
    it: the grouping of an existing packed table wins over the spec's (the planner says so)."""
    archive_spec = spec.archive
    if archive_spec is None or archive_spec.compressAfterDays is None or spec.partitionBy is None:
        return None
    if observed.relation is None or observed.archive is None:
        return None
    segment = tuple(archive_spec.segmentBy)
    stored = stored_segment(observed.packed.comment) if observed.packed is not None else ()
    if stored:
        segment = stored
    if layout_problem(observed.relation.columns, segment) is not None:
        return None
    return PackLayout(
        archive=observed.archive.qname,
        columns=observed.relation.columns,
        segment=segment,
        time_column=spec.partitionBy.column,
        compression=archive_spec.packCompression,
        pack_rows=archive_spec.packRows,
    )
