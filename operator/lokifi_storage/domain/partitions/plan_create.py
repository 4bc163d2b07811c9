"""Steps 1-3 of plan.py: finish interrupted detaches, make the parent's own objects, and make
the partitions that are due (now + premake ahead, and ranges with rows waiting in DEFAULT).

Partitions are recognised by their bounds, never by their names: a partition an admin made by
hand for exactly a planned range counts as present; one that overlaps a planned range is left
alone and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import SubpartitionBySpec
from lokifi_storage.domain.partitions.actions import (
    Action,
    CreateArchiveTable,
    CreateParentIndex,
    FinalizeDetach,
    NewRelation,
)
from lokifi_storage.domain.partitions.bounds import (
    KeyType,
    TimeRange,
    partition_suffix,
    range_containing,
    ranges_ahead,
)
from lokifi_storage.domain.partitions.catalog import Bound, ObservedRelation, QName
from lokifi_storage.domain.partitions.index_plan import plan_indexes
from lokifi_storage.domain.partitions.plan_draft import Draft, Ranged, time_bound

__all__ = [
    "MAX_BACKFILL",
    "Parents",
    "finish_detaches",
    "month_children",
    "parent_objects",
    "partitions_due",
]

MAX_BACKFILL = 120  # partitions created per pass for rows found in DEFAULT


@dataclass
class Parents:
    """What step 2 found or planned that later steps build on."""

    default: ObservedRelation | None  # the DEFAULT partition, when it exists already
    creating_default: bool
    archive: QName | None  # the archive table to move partitions to, None: no archiving
    # Index work on existing partitions, run after the new partitions (step 4).
    later_indexes: list[Action] = field(default_factory=list)
    make_default: Action | None = None  # the DEFAULT to create after the new partitions


def finish_detaches(draft: Draft, rel: ObservedRelation, archive: ObservedRelation | None) -> None:
    """Step 1: a DETACH ... CONCURRENTLY interrupted half way blocks every other DETACH."""
    for tree in (rel, archive):
        for child in tree.children if tree else ():
            if child.detach_pending and tree is not None:
                draft.actions.append(FinalizeDetach(draft.table, tree.qname, child.qname))


def parent_objects(
    draft: Draft, rel: ObservedRelation, archive_rel: ObservedRelation | None, column: str
) -> Parents:
    """Step 2: parent indexes ON ONLY, the archive table, and the DEFAULT partition to make
    after step 3. Partitions created after the parent's indexes are born with theirs and
    attach to them."""
    index_plan = plan_indexes(draft.table, rel, draft.indexes)
    draft.problems.extend(index_plan.problems)

    def on_parent(a: Action) -> bool:
        return isinstance(a, CreateParentIndex) and a.relation == rel.qname

    draft.actions.extend(a for a in index_plan.actions if on_parent(a))
    later = [a for a in index_plan.actions if not on_parent(a)]
    default = rel.default_child()
    make_default: Action | None = None
    if default is None:
        # Made after the partitions due (step 3): while a parent has no DEFAULT, attaching a
        # partition neither scans nor locks anything else, so readers of the table never wait
        # for the new months and they need no lock of the parent or move of rows.
        make_default = draft.create(
            rel.qname,
            QName(rel.qname.schema, f"{draft.table.name}_default"),
            Bound(is_default=True),
            column,
            None,
        )
    archive_q: QName | None = None
    if draft.spec.archive is not None:
        archive_q = QName(draft.spec.archive.schema_, draft.table.name)
        if archive_rel is None:
            draft.actions.append(
                CreateArchiveTable(draft.table, rel.qname, archive_q, column, draft.indexes)
            )
        elif not archive_rel.partitioned or archive_rel.key_columns != (column,):
            draft.problem(
                Reason.PARTITION_KEY_MISMATCH,
                f"archive table {archive_q} exists but is not PARTITION BY RANGE "
                f"({column}); rename or drop it",
            )
            archive_q = None
    if archive_rel is not None and archive_q is not None:
        archive_plan = plan_indexes(draft.table, archive_rel, draft.indexes)
        draft.problems.extend(archive_plan.problems)
        later.extend(archive_plan.actions)
    return Parents(default, default is None, archive_q, later, make_default)


def partitions_due(
    draft: Draft,
    rel: ObservedRelation,
    key_type: KeyType,
    column: str,
    default: ObservedRelation | None,
    main_ranges: list[Ranged],
    archived: list[Ranged],
) -> None:
    """Step 3: partitions for now + `premake` ahead, and for any range that has rows waiting
    in DEFAULT (each moves its rows out of DEFAULT in the transaction that creates it)."""
    assert draft.spec.partitionBy is not None
    interval = draft.spec.partitionBy.interval
    wanted: dict[TimeRange, int] = {
        r: 0 for r in ranges_ahead(draft.now, interval, draft.spec.premake)
    }
    backfill = 0
    for start, rows in draft.observed.default_buckets:
        r = range_containing(start, interval)
        if r in wanted:
            wanted[r] += rows
            continue
        if any(a is not None and a.overlaps(r) for _, a in archived):
            draft.notes.append(
                f"{rows} rows in the DEFAULT partition belong to archived range "
                f"{r.start.date()}..{r.end.date()}; they stay in DEFAULT"
            )
            continue
        if backfill >= MAX_BACKFILL:
            draft.notes.append("more ranges have rows in DEFAULT; they follow next pass")
            break
        backfill += 1
        wanted[r] = rows
    sub = draft.spec.subpartitionBy
    exact_ranges = {m: c for c, m in reversed(main_ranges) if m is not None}
    for r in sorted(wanted):
        exact = exact_ranges.get(r)
        if exact is not None:
            if sub is not None and exact.partitioned and draft.sub_possible:
                _subpartitions_due(draft, exact)
            continue
        clash = next((c for c, m in main_ranges if m is not None and m.overlaps(r)), None)
        if clash is not None:
            draft.notes.append(
                f"{clash.qname} overlaps the range {r.start.date()}..{r.end.date()}; left as it is"
            )
            continue
        name = QName(rel.qname.schema, f"{draft.table.name}_{partition_suffix(r.start, interval)}")
        draft.actions.append(
            draft.create(
                rel.qname,
                name,
                time_bound(r, key_type),
                column,
                default.qname if default else None,
                wanted[r],
                sub_relations(draft, name),
            )
        )


def sub_relations(draft: Draft, name: QName) -> tuple[NewRelation, ...]:
    sub = draft.spec.subpartitionBy
    if sub is None or not draft.sub_possible:
        return ()
    return month_children(name, sub)


def month_children(name: QName, sub: SubpartitionBySpec) -> tuple[NewRelation, ...]:
    """The sub-partitions of the month `name`: `count` ranges of `rangeSize` and a DEFAULT,
    named `<month>_s<i>` and `<month>_sdefault` (an unpacked month is rebuilt the same way)."""
    children = [
        NewRelation(
            QName(name.schema, f"{name.name}_s{i}"),
            Bound(lower=str(i * sub.rangeSize), upper=str((i + 1) * sub.rangeSize)),
        )
        for i in range(sub.count)
    ]
    default = NewRelation(QName(name.schema, f"{name.name}_sdefault"), Bound(is_default=True))
    return (*children, default)


def _subpartitions_due(draft: Draft, part: ObservedRelation) -> None:
    """A partition made before `count` grew, or with a sub-partition dropped by hand."""
    sub = draft.spec.subpartitionBy
    assert sub is not None
    if part.key_columns != (sub.column,):
        draft.notes.append(f"{part.qname} is not sub-partitioned on {sub.column}; left as is")
        return
    existing = [(c, c.bound.int_range() if c.bound else None) for c in part.children]
    present = {r for _, r in existing if r is not None}
    sub_default = part.default_child()
    for child in sub_relations(draft, part.qname):
        if child.bound.is_default:
            if sub_default is None:
                draft.actions.append(
                    draft.create(part.qname, child.qname, child.bound, sub.column, None)
                )
            continue
        lo, hi = int(child.bound.lower or 0), int(child.bound.upper or 0)
        if (lo, hi) in present:
            continue
        if any(r is not None and r[0] < hi and lo < r[1] for _, r in existing):
            draft.notes.append(f"a sub-partition of {part.qname} overlaps [{lo}, {hi})")
            continue
        draft.actions.append(
            draft.create(
                part.qname,
                child.qname,
                child.bound,
                sub.column,
                sub_default.qname if sub_default else None,
            )
        )
