"""Steps 5-7 of plan.py: archival of partitions wholly older than `archive.afterDays`,
retention (drop, or export-then-drop in the Job), and compression of archived months (in the
Job). All three judge a partition by the time range of its bound against `now`.
"""

from __future__ import annotations

import datetime as dt

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.partitions.actions import (
    ArchivePartition,
    AttachOrphan,
    DropPartition,
    ExportPartition,
)
from lokifi_storage.domain.partitions.bounds import KeyType, TimeRange, parse_suffix
from lokifi_storage.domain.partitions.catalog import (
    ARCHIVE_MARKER,
    BOUNDS_CHECK,
    ObservedRelation,
    QName,
)
from lokifi_storage.domain.partitions.export_layout import export_key, parse_kept_mark
from lokifi_storage.domain.partitions.pack import PackPartition
from lokifi_storage.domain.partitions.pack_layout import PackLayout, layout_problem, stored_segment
from lokifi_storage.domain.partitions.plan_draft import Draft, Ranged, descendants, time_bound

__all__ = ["Expiring", "adopt_orphans", "archive_due", "compress_due", "retention_due"]

# (parent, partition, its range): a partition past retention, wherever it is now.
Expiring = tuple[QName, ObservedRelation, TimeRange]


def adopt_orphans(
    draft: Draft,
    archive_q: QName | None,
    archived: list[Ranged],
    column: str,
    key_type: KeyType,
    archive_before: dt.datetime | None,
) -> None:
    """Step 5, first half: a table our own archive run detached and then was interrupted
    before attaching it to the archive (it carries ARCHIVE_MARKER) is attached now."""
    assert draft.spec.partitionBy is not None
    prefix = f"{draft.table.name}_"
    for orphan in draft.observed.orphans:
        parsed = (
            parse_suffix(orphan.qname.name[len(prefix) :])
            if orphan.qname.name.startswith(prefix)
            else None
        )
        if parsed is None or parsed[0] != draft.spec.partitionBy.interval:
            continue
        r = parsed[1]
        due = archive_before is not None and r.wholly_before(archive_before)
        if archive_q is None or not due:
            draft.notes.append(f"detached table {orphan.qname} is not a partition; left alone")
            continue
        if ARCHIVE_MARKER not in orphan.checks + orphan.unvalidated_checks:
            draft.notes.append(
                f"detached table {orphan.qname} was not detached by the operator (no "
                f"{ARCHIVE_MARKER} marker); left alone"
            )
            continue
        if any(a is not None and a.overlaps(r) for _, a in archived):
            draft.problem(
                Reason.RANGE_CONFLICT,
                f"detached table {orphan.qname} overlaps a partition of {archive_q}; "
                "compare them and drop the copy you do not need",
            )
            continue
        draft.actions.append(
            AttachOrphan(
                draft.table,
                orphan=orphan.qname,
                archive=archive_q,
                column=column,
                bound=time_bound(r, key_type),
                descendants=descendants(orphan),
            )
        )


def archive_due(
    draft: Draft,
    rel: ObservedRelation,
    main_ranges: list[Ranged],
    settled: list[Ranged],
    archive_q: QName | None,
    key_type: KeyType,
    *,
    column: str,
    drop_before: dt.datetime | None,
    archive_before: dt.datetime | None,
    concurrently: bool,
) -> list[Expiring]:
    """Step 5: move partitions wholly older than `archive.afterDays` to the archive table;
    return the live partitions past retention instead (they are dropped, not archived)."""
    expiring: list[Expiring] = []
    for child, r in main_ranges:
        if r is None or child.detach_pending:
            continue
        if drop_before is not None and r.wholly_before(drop_before):
            expiring.append((rel.qname, child, r))
        elif archive_q is not None and archive_before and r.wholly_before(archive_before):
            clash = [c.qname for c, a in settled if a is not None and a.overlaps(r)]
            if clash:
                draft.problem(
                    Reason.RANGE_CONFLICT,
                    f"cannot archive {child.qname}: {clash[0]} in the archive overlaps it",
                )
                continue
            leaves = child.leaves()
            draft.actions.append(
                ArchivePartition(
                    draft.table,
                    parent=rel.qname,
                    partition=child.qname,
                    archive=archive_q,
                    column=column,
                    bound=time_bound(r, key_type),
                    leaves_needing_check=tuple(
                        leaf.qname
                        for leaf in leaves
                        if BOUNDS_CHECK not in leaf.checks + leaf.unvalidated_checks
                    ),
                    leaves_to_validate=tuple(
                        leaf.qname for leaf in leaves if BOUNDS_CHECK not in leaf.checks
                    ),
                    descendants=descendants(child),
                    concurrently=concurrently,
                    marked=ARCHIVE_MARKER in child.checks + child.unvalidated_checks,
                )
            )
    return expiring


def compress_due(
    draft: Draft,
    archived: list[Ranged],
    archive_rel: ObservedRelation | None,
    key_type: KeyType,
    *,
    column: str,
    drop_before: dt.datetime | None,
) -> tuple[int, list[Expiring]]:
    """Step 7: pack archived months older than `archive.compressAfterDays` (deferred to the
    Job). Months past retention are not packed: they are returned, to expire."""
    archive = draft.spec.archive
    compress_before = (
        draft.now - dt.timedelta(days=archive.compressAfterDays)
        if archive and archive.compressAfterDays is not None
        else None
    )
    pending = 0
    expiring: list[Expiring] = []
    for child, r in archived:
        if r is None or archive_rel is None or child.detach_pending:
            continue
        if drop_before is not None and r.wholly_before(drop_before):
            expiring.append((archive_rel.qname, child, r))
        elif compress_before is not None and r.wholly_before(compress_before):
            pending += _pack(draft, archive_rel, child, column, key_type, r)
    return pending, expiring


def _pack(
    draft: Draft,
    archive_rel: ObservedRelation,
    part: ObservedRelation,
    column: str,
    key_type: KeyType,
    r: TimeRange,
) -> int:
    """One PackPartition for an archived month (all its sub-partitions at once)."""
    assert draft.spec.archive is not None
    columns = draft.observed.relation.columns if draft.observed.relation else ()
    segment = tuple(draft.spec.archive.segmentBy)
    packed = draft.observed.packed
    stored = stored_segment(packed.comment) if packed is not None else ()
    if packed is not None and stored and stored != segment:
        # Months already packed keep their grouping; every month of one table shares it.
        draft.notes.append(
            f"{packed.qname} groups by {', '.join(stored)}, not archive.segmentBy "
            f"({', '.join(segment)}); months are packed as the existing ones. To regroup, "
            "unpack every month and drop the packed table"
        )
        segment = stored
    problem = layout_problem(columns, segment)
    if problem is not None:
        draft.problem(Reason.INVALID_SPEC, f"{draft.table}: {problem}")
        return 0
    layout = PackLayout(
        archive=archive_rel.qname,
        columns=columns,
        segment=segment,
        time_column=column,
        compression=draft.spec.archive.packCompression,
        pack_rows=draft.spec.archive.packRows,
    )
    draft.deferred.append(
        PackPartition(draft.table, month=part.qname, bound=time_bound(r, key_type), layout=layout)
    )
    return 1


def retention_due(draft: Draft, expiring: list[Expiring], key_type: KeyType) -> int:
    """Step 6: drop (only with `dropWithoutExport`) or export-then-drop (deferred to the Job)
    every partition past retention; the number of exports pending."""
    retention = draft.spec.retention
    if retention is None or not expiring:
        return 0
    if retention.exportTo is not None:
        target = retention.exportTo
        for parent, child, r in expiring:
            key = export_key(
                target.prefix, draft.source, draft.database, child.qname.schema, child.qname.name
            )
            draft.deferred.append(
                ExportPartition(
                    draft.table,
                    parent=parent,
                    partition=child.qname,
                    bound=time_bound(r, key_type),
                    bucket=target.bucket,
                    key=key,
                    storage_class=target.storageClass,
                    source=draft.source,
                    database=draft.database,
                    unpack=_unpack_layout(draft, parent),
                )
            )
            kept = parse_kept_mark(child.comment)
            if kept is not None:
                draft.problem(kept[0], f"{child.qname} kept: {kept[1]}")
        return len(expiring)
    if retention.dropWithoutExport:
        for parent, child, r in expiring:
            draft.actions.append(
                DropPartition(draft.table, parent, child.qname, time_bound(r, key_type))
            )
        return 0
    draft.notes.append(
        f"{len(expiring)} partitions are past retention but kept: set retention.exportTo, "
        "or retention.dropWithoutExport: true to drop them without a copy"
    )
    return 0


def _unpack_layout(draft: Draft, parent: QName) -> PackLayout | None:
    """How to read back the months of `parent` when it is the packed table, else None."""
    packed = draft.observed.packed
    if packed is None or parent != packed.qname or draft.spec.partitionBy is None:
        return None
    archive = draft.observed.archive.qname if draft.observed.archive else None
    return PackLayout(
        archive=archive or QName(packed.qname.schema, draft.table.name),
        columns=draft.observed.relation.columns if draft.observed.relation else (),
        segment=stored_segment(packed.comment),
        time_column=draft.spec.partitionBy.column,
    )
