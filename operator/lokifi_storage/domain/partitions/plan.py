"""The partition planner: table spec + observed catalog + now -> ordered actions. Pure.

Order matters and is fixed (one function per step, in the plan_*.py modules):
  0. the table is what the spec says (plan_checks.py)
  1. finish interrupted DETACH ... CONCURRENTLY (plan_create.py)
  2. parent indexes ON ONLY, the archive table (partitions created after the parent's
     indexes are born with theirs and attach to them)
  3. partitions for now + `premake` ahead, and for any range that has rows waiting in DEFAULT
     (each moves its rows out of DEFAULT in the transaction that creates it); then the
     DEFAULT partition if there is none (attaching to a parent without one locks nothing else)
  4. missing indexes on existing partitions (concurrently), before anything is archived, so an
     ATTACH to the archive never has to build an index under a lock
  5. archival of partitions wholly older than `archive.afterDays` (plan_archive.py)
  6. retention: drop (only with `dropWithoutExport`) or export-then-drop (deferred to the Job)
  7. compression of archived partitions (deferred to the Job)
Steps 6 and 7 only add deferred work, except drops without export; the deferred list holds the
packs of step 7 before the exports of step 6, because which archived months expire is learnt
while walking them for compression.

Partitions are recognised by their bounds, never by their names: a partition an admin made by
hand for exactly a planned range counts as present; one that overlaps a planned range is left
alone and reported.

Step 0 checks the table against the spec from the catalog alone, and a mismatch is a problem
with its own reason and the fix, planned once and not retried: nothing is sent that the server
is known to refuse.

One mismatch is not all-or-nothing: when only the sub-partitioning is impossible (a key lacks
`subpartitionBy.column`), the months are still made, without sub-partitions, and the problem
is reported. Rows with no month partition land in DEFAULT, and a DEFAULT partition is what this
operator exists to keep empty: it cannot be archived or dropped by range, and every month later
carved out of it must move its rows under a lock. Sub-partitions are a layout for speed; the
months are about keeping data where retention can reach it. Months made meanwhile stay without
sub-partitions after the key is fixed (reported as a note); new months get them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.actions import Action
from lokifi_storage.domain.partitions.bounds import KeyType
from lokifi_storage.domain.partitions.catalog import (
    ARCHIVE_MARKER,
    BOUNDS_CHECK,
    ObservedRelation,
    ObservedTable,
    QName,
)
from lokifi_storage.domain.partitions.index_plan import Problem, plan_indexes
from lokifi_storage.domain.partitions.plan_archive import (
    adopt_orphans,
    archive_due,
    compress_due,
    retention_due,
)
from lokifi_storage.domain.partitions.plan_checks import check_partitioned, check_plain
from lokifi_storage.domain.partitions.plan_create import (
    MAX_BACKFILL,
    finish_detaches,
    parent_objects,
    partitions_due,
)
from lokifi_storage.domain.partitions.plan_draft import Draft, time_range

__all__ = [
    "ARCHIVE_MARKER",
    "BOUNDS_CHECK",
    "MAX_BACKFILL",
    "TablePlan",
    "TableSummary",
    "plan_table",
]


@dataclass(frozen=True)
class TableSummary:
    """The numbers status.partitions shows for one table."""

    table: str
    count: int = 0
    oldest: str | None = None
    newest: str | None = None
    in_default: int = 0
    archived: int = 0
    pending_compress: int = 0
    pending_export: int = 0


@dataclass(frozen=True)
class TablePlan:
    """Immediate `actions` (in order), `deferred` ones for the Jobs, `problems` that make
    PartitionsReady False, and `notes` worth telling an admin that are not failures."""

    table: QName
    actions: tuple[Action, ...] = ()
    deferred: tuple[Action, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    summary: TableSummary = field(default_factory=lambda: TableSummary(table=""))


def plan_table(
    spec: TableSpec,
    observed: ObservedTable,
    now: dt.datetime,
    *,
    database: str = "",
    source: str = "",
) -> TablePlan:
    """Everything one reconcile should do for `spec`, given what the catalog shows `now`.

    `database` and `source` (the server's system_identifier) name exports; the reconciler,
    which only counts them, may leave `source` out.
    """
    draft = Draft.start(spec, observed, now, database, source)
    rel = observed.relation
    by = spec.partitionBy
    summary = None
    if rel is None:
        shape = f" as PARTITION BY RANGE ({by.column})" if by else ""
        draft.problem(
            Reason.TABLE_NOT_FOUND, f"table {draft.table} does not exist; create it{shape}"
        )
    elif by is None:
        index_plan = plan_indexes(draft.table, rel, draft.indexes)
        draft.actions.extend(index_plan.actions)
        draft.problems.extend(index_plan.problems)
    elif not rel.partitioned:
        check_plain(draft, rel, by.column)
    else:
        key_type = check_partitioned(draft, rel, by.column)
        if key_type is not None:
            summary = _plan_partitioned(draft, rel, key_type, by.column)
    return TablePlan(
        table=draft.table,
        actions=tuple(draft.actions),
        deferred=tuple(draft.deferred),
        problems=tuple(draft.problems),
        notes=tuple(draft.notes),
        summary=summary or TableSummary(table=spec.name),
    )


def _plan_partitioned(
    draft: Draft, rel: ObservedRelation, key_type: KeyType, column: str
) -> TableSummary:
    spec, observed = draft.spec, draft.observed
    archive_rel = observed.archive
    finish_detaches(draft, rel, archive_rel)  # 1
    parents = parent_objects(draft, rel, archive_rel, column)  # 2

    main_children = [c for c in rel.children if not (c.bound and c.bound.is_default)]
    main_ranges = [(c, time_range(c)) for c in main_children]
    archived = [(c, time_range(c)) for c in (archive_rel.children if archive_rel else ())]
    packed_rel = observed.packed
    packed = [(c, time_range(c)) for c in (packed_rel.children if packed_rel else ())]
    settled = archived + packed  # every range the archive holds, plain or packed
    partitions_due(draft, rel, key_type, column, parents.default, main_ranges, settled)  # 3
    if parents.make_default is not None:
        draft.actions.append(parents.make_default)

    draft.actions.extend(parents.later_indexes)  # 4

    drop_before = (
        draft.now - dt.timedelta(days=spec.retention.dropAfterDays) if spec.retention else None
    )
    archive_before = draft.now - dt.timedelta(days=spec.archive.afterDays) if spec.archive else None
    adopt_orphans(draft, parents.archive, settled, column, key_type, archive_before)  # 5
    expiring = archive_due(
        draft,
        rel,
        main_ranges,
        settled,
        parents.archive,
        key_type,
        column=column,
        drop_before=drop_before,
        archive_before=archive_before,
        concurrently=not parents.creating_default and parents.default is None,
    )
    pending_compress, expiring_archived = compress_due(  # 7
        draft, archived, archive_rel, key_type, column=column, drop_before=drop_before
    )
    expiring.extend(expiring_archived)
    for child, r in packed:
        due = r is not None and drop_before is not None and r.wholly_before(drop_before)
        if packed_rel is not None and r is not None and due:
            expiring.append((packed_rel.qname, child, r))
    pending_export = retention_due(draft, expiring, key_type)  # 6

    starts = [r.start for _, r in main_ranges if r is not None]
    return TableSummary(
        table=spec.name,
        count=len(main_children),
        oldest=min(starts).date().isoformat() if starts else None,
        newest=max(starts).date().isoformat() if starts else None,
        in_default=observed.default_rows,
        archived=len(settled),
        pending_compress=pending_compress,
        pending_export=pending_export,
    )
