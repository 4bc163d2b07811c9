"""The partition planner: table spec + observed catalog + now -> ordered actions. Pure.

Order matters and is fixed:
  1. finish interrupted DETACH ... CONCURRENTLY
  2. parent indexes ON ONLY, the DEFAULT partition, the archive table (partitions created
     after the parent's indexes are born with theirs and attach to them)
  3. partitions for now + `premake` ahead, and for any range that has rows waiting in DEFAULT
     (each moves its rows out of DEFAULT in the transaction that creates it)
  4. missing indexes on existing partitions (concurrently), before anything is archived, so an
     ATTACH to the archive never has to build an index under a lock
  5. archival of partitions wholly older than `archive.afterDays`
  6. retention: drop (only with `dropWithoutExport`) or export-then-drop (deferred to the Job)
  7. compression of archived partitions (deferred to the Job)

Partitions are recognised by their bounds, never by their names: a partition an admin made by
hand for exactly a planned range counts as present; one that overlaps a planned range is left
alone and reported.

Before any of that the table is checked against the spec, from the catalog alone: it exists,
is partitioned the declared way, its key columns exist with fitting types, and every primary
key, unique constraint and unique index includes every partitioning column (PostgreSQL refuses
a partition otherwise, on every attempt). A mismatch is a problem with its own reason and the
fix, planned once and not retried: nothing is sent that the server is known to refuse.

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
from lokifi_storage.domain.export_layout import export_key, parse_kept_mark
from lokifi_storage.domain.index_defs import IndexDef, index_def_from_spec
from lokifi_storage.domain.index_plan import Problem, plan_indexes
from lokifi_storage.domain.pack_layout import PackLayout, layout_problem, stored_segment
from lokifi_storage.domain.partition_actions import (
    Action,
    ArchivePartition,
    AttachOrphan,
    CreateArchiveTable,
    CreateParentIndex,
    CreatePartition,
    DropPartition,
    ExportPartition,
    FinalizeDetach,
    NewRelation,
)
from lokifi_storage.domain.partition_bounds import (
    KeyType,
    TimeRange,
    bound_literal,
    fits_identifier,
    parse_suffix,
    partition_suffix,
    range_containing,
    ranges_ahead,
    to_utc,
)
from lokifi_storage.domain.partition_catalog import (
    Bound,
    ObservedRelation,
    ObservedTable,
    QName,
    UniqueKey,
    key_type_of,
)
from lokifi_storage.domain.partition_pack import PackPartition

__all__ = [
    "ARCHIVE_MARKER",
    "BOUNDS_CHECK",
    "MAX_BACKFILL",
    "SUB_BOUNDS_CHECK",
    "TablePlan",
    "TableSummary",
    "plan_table",
]

BOUNDS_CHECK = "lokifi_bounds"  # CHECK (key within the partition's time range)
# CHECK (true) NOT VALID, set just before a concurrent DETACH and dropped by the ATTACH to the
# archive: a detached table that carries it was left by an interrupted archive run; one that
# does not was detached by someone else, on purpose, and is never adopted.
ARCHIVE_MARKER = "lokifi_archiving"
SUB_BOUNDS_CHECK = "lokifi_sub_bounds"  # CHECK (sub key within a sub-partition's range)
MAX_BACKFILL = 120  # partitions created per pass for rows found in DEFAULT
INTEGER_TYPES = {"smallint", "integer", "bigint"}


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


def _time_range(rel: ObservedRelation) -> TimeRange | None:
    if rel.bound is None:
        return None
    pair = rel.bound.time_range()
    if pair is None or not pair[0] < pair[1]:
        return None
    return TimeRange(pair[0], pair[1])


def _time_bound(r: TimeRange, key_type: KeyType) -> Bound:
    return Bound(lower=bound_literal(r.start, key_type), upper=bound_literal(r.end, key_type))


def _descendants(rel: ObservedRelation) -> tuple[QName, ...]:
    out: list[QName] = []
    for child in rel.children:
        out.append(child.qname)
        out.extend(_descendants(child))
    return tuple(out)


def _parse_indexes(spec: TableSpec, problems: list[Problem]) -> tuple[IndexDef, ...]:
    defs: list[IndexDef] = []
    for index in spec.indexes:
        try:
            defs.append(index_def_from_spec(index))
        except ValueError as error:
            problems.append(Problem(Reason.INVALID_SPEC, str(error)))
    return tuple(defs)


class _Planner:
    """One table's plan in the making; methods follow the numbered order of the module doc."""

    def __init__(
        self, spec: TableSpec, observed: ObservedTable, now: dt.datetime, database: str, source: str
    ) -> None:
        self.spec = spec
        self.observed = observed
        self.now = to_utc(now)
        self.database = database
        self.source = source
        self.table = QName.parse(spec.name)
        self.actions: list[Action] = []
        self.deferred: list[Action] = []
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.indexes = _parse_indexes(spec, self.problems)
        self.sub_possible = True  # False when a unique key lacks the sub-partition column

    def result(self, summary: TableSummary | None = None) -> TablePlan:
        return TablePlan(
            table=self.table,
            actions=tuple(self.actions),
            deferred=tuple(self.deferred),
            problems=tuple(self.problems),
            notes=tuple(self.notes),
            summary=summary or TableSummary(table=self.spec.name),
        )

    def problem(self, reason: str, message: str) -> TablePlan:
        self.problems.append(Problem(reason, message))
        return self.result()

    # -- checks of the table itself -----------------------------------------------------------

    def plan(self) -> TablePlan:
        rel = self.observed.relation
        by = self.spec.partitionBy
        if rel is None:
            shape = f" as PARTITION BY RANGE ({by.column})" if by else ""
            return self.problem(
                Reason.TABLE_NOT_FOUND,
                f"table {self.table} does not exist; create it{shape}",
            )
        if by is None:
            index_plan = plan_indexes(self.table, rel, self.indexes)
            self.actions.extend(index_plan.actions)
            self.problems.extend(index_plan.problems)
            return self.result()
        if not rel.partitioned:
            self.problems.append(
                Problem(
                    Reason.TABLE_NOT_PARTITIONED,
                    f"table {self.table} is a plain table; recreate it as PARTITION BY RANGE "
                    f"({by.column}): rename it, CREATE TABLE {self.table} (LIKE <old> "
                    f"INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE "
                    f"({by.column}), and move the rows",
                )
            )
            column = next((c for c in rel.columns if c.name == by.column), None)
            if column is None:
                return self.problem(
                    Reason.PARTITION_KEY_MISMATCH,
                    f"table {self.table} has no column {by.column} (partitionBy.column); "
                    "name an existing timestamptz, timestamp or date column in the spec",
                )
            if key_type_of(column.type) is None:
                return self.problem(
                    Reason.PARTITION_KEY_MISMATCH,
                    f"partitionBy column {by.column} of {self.table} is {column.type}; "
                    "time partitioning needs timestamptz, timestamp or date",
                )
            self.check_unique_keys(rel, [by.column])
            return self.result()
        if rel.key_strategy != "r" or rel.key_columns != (by.column,):
            kind = {"r": "RANGE", "l": "LIST", "h": "HASH"}.get(rel.key_strategy or "", "?")
            return self.problem(
                Reason.PARTITION_KEY_MISMATCH,
                f"table {self.table} is PARTITION BY {kind} ({', '.join(rel.key_columns)}); "
                f"the spec expects RANGE ({by.column})",
            )
        key_type = key_type_of(rel.key_types[0])
        if key_type is None:
            return self.problem(
                Reason.PARTITION_KEY_MISMATCH,
                f"partition key {by.column} of {self.table} is {rel.key_types[0]}; "
                "time partitioning needs timestamptz, timestamp or date",
            )
        sub = self.spec.subpartitionBy
        if sub is not None:
            column = next((c for c in rel.columns if c.name == sub.column), None)
            if column is None or column.type not in INTEGER_TYPES:
                found = "missing" if column is None else column.type
                self.sub_possible = False
                self.problems.append(
                    Problem(
                        Reason.PARTITION_KEY_MISMATCH,
                        f"subpartitionBy column {sub.column} of {self.table} must be an "
                        f"integer column (found {found}); months are made without "
                        "sub-partitions until the spec names one",
                    )
                )
        if self.check_unique_keys(rel, [by.column]):
            return self.result()
        if sub is not None and self.sub_possible:
            self.sub_possible = not self.check_unique_keys(rel, [sub.column], partial=True)
        longest = f"{self.table.name}_p2026_01_01_s{(sub.count if sub else 0)}"
        longest_index = max((len(i.name) for i in self.indexes), default=0)
        if not fits_identifier(longest) or longest_index > 63:
            return self.problem(
                Reason.INVALID_SPEC,
                f"table name {self.table.name} is too long for partition names "
                "(PostgreSQL keeps 63 bytes)",
            )
        return self.plan_partitioned(rel, key_type)

    def check_unique_keys(
        self, rel: ObservedRelation, columns: list[str], *, partial: bool = False
    ) -> bool:
        """A problem for each unique key of `rel` lacking one of `columns`; True if any.

        `partial`: only sub-partitioning is impossible, the months are still made (see the
        module docstring).
        """
        found = False
        for key in rel.unique_keys:
            missing = [c for c in columns if c not in key.columns]
            if not missing:
                continue
            found = True
            what = "sub-partitions" if partial else "partitions"
            then = (
                "; months are made without sub-partitions until then"
                if partial
                else "; no partition is made until then"
            )
            spec_fix = (
                "remove subpartitionBy from the spec"
                if partial
                else "partition by a column every unique key has"
            )
            self.problems.append(
                Problem(
                    Reason.KEY_LACKS_PARTITION_COLUMN,
                    f"table {self.table}: {key.describe()} lacks column "
                    f"{', '.join(missing)}, and PostgreSQL refuses {what} on "
                    f"{', '.join(missing)} unless every unique key includes it{then}. Fix: "
                    f"{_key_fix(self.table, key, missing)}; or {spec_fix}",
                )
            )
        return found

    # -- the partitioned table ----------------------------------------------------------------

    def plan_partitioned(self, rel: ObservedRelation, key_type: KeyType) -> TablePlan:
        assert self.spec.partitionBy is not None
        column = self.spec.partitionBy.column
        archive_rel = self.observed.archive

        # 1. interrupted concurrent detaches
        for tree in (rel, archive_rel):
            for child in tree.children if tree else ():
                if child.detach_pending and tree is not None:
                    self.actions.append(FinalizeDetach(self.table, tree.qname, child.qname))

        # 2. parent indexes ON ONLY, the DEFAULT partition, the archive table
        index_plan = plan_indexes(self.table, rel, self.indexes)
        self.problems.extend(index_plan.problems)
        self.actions.extend(
            a
            for a in index_plan.actions
            if isinstance(a, CreateParentIndex) and a.relation == rel.qname
        )
        later_index_actions = [
            a
            for a in index_plan.actions
            if not (isinstance(a, CreateParentIndex) and a.relation == rel.qname)
        ]
        default = rel.default_child()
        creating_default = default is None
        if default is None:
            self.actions.append(
                self.create(
                    rel.qname,
                    QName(rel.qname.schema, f"{self.table.name}_default"),
                    Bound(is_default=True),
                    column,
                    None,
                )
            )
        archive_q: QName | None = None
        if self.spec.archive is not None:
            archive_q = QName(self.spec.archive.schema_, self.table.name)
            if archive_rel is None:
                self.actions.append(
                    CreateArchiveTable(self.table, rel.qname, archive_q, column, self.indexes)
                )
            elif not archive_rel.partitioned or archive_rel.key_columns != (column,):
                self.problems.append(
                    Problem(
                        Reason.PARTITION_KEY_MISMATCH,
                        f"archive table {archive_q} exists but is not PARTITION BY RANGE "
                        f"({column}); rename or drop it",
                    )
                )
                archive_q = None
        if archive_rel is not None and archive_q is not None:
            archive_plan = plan_indexes(self.table, archive_rel, self.indexes)
            self.problems.extend(archive_plan.problems)
            later_index_actions.extend(archive_plan.actions)

        # 3. partitions ahead and for rows waiting in DEFAULT
        main_children = [c for c in rel.children if not (c.bound and c.bound.is_default)]
        main_ranges = [(c, _time_range(c)) for c in main_children]
        archived = [(c, _time_range(c)) for c in (archive_rel.children if archive_rel else ())]
        packed_rel = self.observed.packed
        packed = [(c, _time_range(c)) for c in (packed_rel.children if packed_rel else ())]
        settled = archived + packed  # every range the archive holds, plain or packed
        self.plan_ranges(rel, key_type, column, default, main_ranges, settled)

        # 4. indexes on existing partitions
        self.actions.extend(later_index_actions)

        # 5-7. orphans, archive, retention, compression
        drop_before = (
            self.now - dt.timedelta(days=self.spec.retention.dropAfterDays)
            if self.spec.retention
            else None
        )
        archive_before = (
            self.now - dt.timedelta(days=self.spec.archive.afterDays) if self.spec.archive else None
        )
        self.plan_orphans(archive_q, settled, column, key_type, archive_before)
        expiring: list[tuple[QName, ObservedRelation, TimeRange]] = []
        for child, r in main_ranges:
            if r is None or child.detach_pending:
                continue
            if drop_before is not None and r.wholly_before(drop_before):
                expiring.append((rel.qname, child, r))
            elif archive_q is not None and archive_before and r.wholly_before(archive_before):
                clash = [c.qname for c, a in settled if a is not None and a.overlaps(r)]
                if clash:
                    self.problems.append(
                        Problem(
                            Reason.RANGE_CONFLICT,
                            f"cannot archive {child.qname}: {clash[0]} in the archive overlaps it",
                        )
                    )
                    continue
                self.actions.append(
                    ArchivePartition(
                        self.table,
                        parent=rel.qname,
                        partition=child.qname,
                        archive=archive_q,
                        column=column,
                        bound=_time_bound(r, key_type),
                        leaves_needing_check=tuple(
                            leaf.qname
                            for leaf in child.leaves()
                            if BOUNDS_CHECK not in leaf.checks + leaf.unvalidated_checks
                        ),
                        leaves_to_validate=tuple(
                            leaf.qname for leaf in child.leaves() if BOUNDS_CHECK not in leaf.checks
                        ),
                        descendants=_descendants(child),
                        concurrently=not creating_default and default is None,
                        marked=ARCHIVE_MARKER in child.checks + child.unvalidated_checks,
                    )
                )
        pending_compress = 0
        compress_before = (
            self.now - dt.timedelta(days=self.spec.archive.compressAfterDays)
            if self.spec.archive and self.spec.archive.compressAfterDays is not None
            else None
        )
        for child, r in archived:
            if r is None or archive_rel is None or child.detach_pending:
                continue
            if drop_before is not None and r.wholly_before(drop_before):
                expiring.append((archive_rel.qname, child, r))
            elif compress_before is not None and r.wholly_before(compress_before):
                pending_compress += self.plan_pack(archive_rel, child, column, key_type, r)
        for child, r in packed:
            due = r is not None and drop_before is not None and r.wholly_before(drop_before)
            if packed_rel is not None and r is not None and due:
                expiring.append((packed_rel.qname, child, r))
        pending_export = self.plan_retention(expiring, key_type)

        starts = [r.start for _, r in main_ranges if r is not None]
        summary = TableSummary(
            table=self.spec.name,
            count=len(main_children),
            oldest=min(starts).date().isoformat() if starts else None,
            newest=max(starts).date().isoformat() if starts else None,
            in_default=self.observed.default_rows,
            archived=len(settled),
            pending_compress=pending_compress,
            pending_export=pending_export,
        )
        return self.result(summary)

    def create(
        self,
        parent: QName,
        name: QName,
        bound: Bound,
        column: str,
        move_from: QName | None,
        rows: int = 0,
        children: tuple[NewRelation, ...] = (),
    ) -> CreatePartition:
        sub = self.spec.subpartitionBy
        root_columns = self.observed.relation.columns if self.observed.relation else ()
        return CreatePartition(
            self.table,
            parent=parent,
            partition=NewRelation(
                name, bound, sub.column if (sub and children) else None, children
            ),
            column=column,
            move_from=move_from,
            columns=tuple(c.name for c in root_columns if not c.generated),
            indexes=self.indexes,
            rows_to_move=rows,
        )

    def sub_relations(self, name: QName) -> tuple[NewRelation, ...]:
        sub = self.spec.subpartitionBy
        if sub is None or not self.sub_possible:
            return ()
        children = [
            NewRelation(
                QName(name.schema, f"{name.name}_s{i}"),
                Bound(lower=str(i * sub.rangeSize), upper=str((i + 1) * sub.rangeSize)),
            )
            for i in range(sub.count)
        ]
        children.append(
            NewRelation(QName(name.schema, f"{name.name}_sdefault"), Bound(is_default=True))
        )
        return tuple(children)

    def plan_ranges(
        self,
        rel: ObservedRelation,
        key_type: KeyType,
        column: str,
        default: ObservedRelation | None,
        main_ranges: list[tuple[ObservedRelation, TimeRange | None]],
        archived: list[tuple[ObservedRelation, TimeRange | None]],
    ) -> None:
        assert self.spec.partitionBy is not None
        interval = self.spec.partitionBy.interval
        wanted: dict[TimeRange, int] = {
            r: 0 for r in ranges_ahead(self.now, interval, self.spec.premake)
        }
        backfill = 0
        for start, rows in self.observed.default_buckets:
            r = range_containing(start, interval)
            if r in wanted:
                wanted[r] += rows
                continue
            if any(a is not None and a.overlaps(r) for _, a in archived):
                self.notes.append(
                    f"{rows} rows in the DEFAULT partition belong to archived range "
                    f"{r.start.date()}..{r.end.date()}; they stay in DEFAULT"
                )
                continue
            if backfill >= MAX_BACKFILL:
                self.notes.append("more ranges have rows in DEFAULT; they follow next pass")
                break
            backfill += 1
            wanted[r] = rows
        sub = self.spec.subpartitionBy
        for r in sorted(wanted):
            exact = next((c for c, m in main_ranges if m == r), None)
            if exact is not None:
                if sub is not None and exact.partitioned and self.sub_possible:
                    self.plan_subranges(exact)
                continue
            clash = next((c for c, m in main_ranges if m is not None and m.overlaps(r)), None)
            if clash is not None:
                self.notes.append(
                    f"{clash.qname} overlaps the range {r.start.date()}..{r.end.date()}; "
                    "left as it is"
                )
                continue
            name = QName(
                rel.qname.schema, f"{self.table.name}_{partition_suffix(r.start, interval)}"
            )
            self.actions.append(
                self.create(
                    rel.qname,
                    name,
                    _time_bound(r, key_type),
                    column,
                    default.qname
                    if default
                    else QName(rel.qname.schema, f"{self.table.name}_default"),
                    wanted[r],
                    self.sub_relations(name),
                )
            )

    def plan_subranges(self, part: ObservedRelation) -> None:
        """A partition made before `count` grew, or with a sub-partition dropped by hand."""
        sub = self.spec.subpartitionBy
        assert sub is not None
        if part.key_columns != (sub.column,):
            self.notes.append(f"{part.qname} is not sub-partitioned on {sub.column}; left as is")
            return
        existing = [(c, c.bound.int_range() if c.bound else None) for c in part.children]
        present = {r for _, r in existing if r is not None}
        sub_default = part.default_child()
        for child in self.sub_relations(part.qname):
            if child.bound.is_default:
                if sub_default is None:
                    self.actions.append(
                        self.create(part.qname, child.qname, child.bound, sub.column, None)
                    )
                continue
            lo, hi = int(child.bound.lower or 0), int(child.bound.upper or 0)
            if (lo, hi) in present:
                continue
            if any(r is not None and r[0] < hi and lo < r[1] for _, r in existing):
                self.notes.append(f"a sub-partition of {part.qname} overlaps [{lo}, {hi})")
                continue
            self.actions.append(
                self.create(
                    part.qname,
                    child.qname,
                    child.bound,
                    sub.column,
                    sub_default.qname if sub_default else None,
                )
            )

    def plan_orphans(
        self,
        archive_q: QName | None,
        archived: list[tuple[ObservedRelation, TimeRange | None]],
        column: str,
        key_type: KeyType,
        archive_before: dt.datetime | None,
    ) -> None:
        assert self.spec.partitionBy is not None
        prefix = f"{self.table.name}_"
        for orphan in self.observed.orphans:
            parsed = (
                parse_suffix(orphan.qname.name[len(prefix) :])
                if orphan.qname.name.startswith(prefix)
                else None
            )
            if parsed is None or parsed[0] != self.spec.partitionBy.interval:
                continue
            r = parsed[1]
            due = archive_before is not None and r.wholly_before(archive_before)
            if archive_q is None or not due:
                self.notes.append(f"detached table {orphan.qname} is not a partition; left alone")
                continue
            if ARCHIVE_MARKER not in orphan.checks + orphan.unvalidated_checks:
                self.notes.append(
                    f"detached table {orphan.qname} was not detached by the operator (no "
                    f"{ARCHIVE_MARKER} marker); left alone"
                )
                continue
            if any(a is not None and a.overlaps(r) for _, a in archived):
                self.problems.append(
                    Problem(
                        Reason.RANGE_CONFLICT,
                        f"detached table {orphan.qname} overlaps a partition of {archive_q}; "
                        "compare them and drop the copy you do not need",
                    )
                )
                continue
            self.actions.append(
                AttachOrphan(
                    self.table,
                    orphan=orphan.qname,
                    archive=archive_q,
                    column=column,
                    bound=_time_bound(r, key_type),
                    descendants=_descendants(orphan),
                )
            )

    def plan_pack(
        self,
        archive_rel: ObservedRelation,
        part: ObservedRelation,
        column: str,
        key_type: KeyType,
        r: TimeRange,
    ) -> int:
        """One PackPartition for an archived month (all its sub-partitions at once)."""
        assert self.spec.archive is not None
        columns = self.observed.relation.columns if self.observed.relation else ()
        segment = tuple(self.spec.archive.segmentBy)
        packed = self.observed.packed
        stored = stored_segment(packed.comment) if packed is not None else ()
        if packed is not None and stored and stored != segment:
            # Months already packed keep their grouping; every month of one table shares it.
            self.notes.append(
                f"{packed.qname} groups by {', '.join(stored)}, not archive.segmentBy "
                f"({', '.join(segment)}); months are packed as the existing ones. To regroup, "
                "unpack every month and drop the packed table"
            )
            segment = stored
        problem = layout_problem(columns, segment)
        if problem is not None:
            self.problems.append(Problem(Reason.INVALID_SPEC, f"{self.table}: {problem}"))
            return 0
        layout = PackLayout(
            archive=archive_rel.qname,
            columns=columns,
            segment=segment,
            time_column=column,
            compression=self.spec.archive.packCompression,
            pack_rows=self.spec.archive.packRows,
        )
        self.deferred.append(
            PackPartition(
                self.table, month=part.qname, bound=_time_bound(r, key_type), layout=layout
            )
        )
        return 1

    def unpack_layout(self, parent: QName) -> PackLayout | None:
        """How to read back the months of `parent` when it is the packed table, else None."""
        packed = self.observed.packed
        if packed is None or parent != packed.qname or self.spec.partitionBy is None:
            return None
        archive = self.observed.archive.qname if self.observed.archive else None
        return PackLayout(
            archive=archive or QName(packed.qname.schema, self.table.name),
            columns=self.observed.relation.columns if self.observed.relation else (),
            segment=stored_segment(packed.comment),
            time_column=self.spec.partitionBy.column,
        )

    def plan_retention(
        self, expiring: list[tuple[QName, ObservedRelation, TimeRange]], key_type: KeyType
    ) -> int:
        retention = self.spec.retention
        if retention is None or not expiring:
            return 0
        if retention.exportTo is not None:
            target = retention.exportTo
            for parent, child, r in expiring:
                key = export_key(
                    target.prefix, self.source, self.database, child.qname.schema, child.qname.name
                )
                self.deferred.append(
                    ExportPartition(
                        self.table,
                        parent=parent,
                        partition=child.qname,
                        bound=_time_bound(r, key_type),
                        bucket=target.bucket,
                        key=key,
                        storage_class=target.storageClass,
                        source=self.source,
                        database=self.database,
                        unpack=self.unpack_layout(parent),
                    )
                )
                kept = parse_kept_mark(child.comment)
                if kept is not None:
                    self.problems.append(Problem(kept[0], f"{child.qname} kept: {kept[1]}"))
            return len(expiring)
        if retention.dropWithoutExport:
            for parent, child, r in expiring:
                self.actions.append(
                    DropPartition(self.table, parent, child.qname, _time_bound(r, key_type))
                )
            return 0
        self.notes.append(
            f"{len(expiring)} partitions are past retention but kept: set retention.exportTo, "
            "or retention.dropWithoutExport: true to drop them without a copy"
        )
        return 0


def _ident(name: str) -> str:
    """An identifier as it must be written in SQL (quoted unless plainly lower case)."""
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def _key_fix(table: QName, key: UniqueKey, missing: list[str]) -> str:
    """The statement that gives `key` the `missing` columns (run in a maintenance window: it
    rebuilds the index)."""
    columns = ", ".join(_ident(c) for c in [*key.columns, *missing])
    qualified = f"{_ident(table.schema)}.{_ident(table.name)}"
    if key.kind == "i":
        return (
            f"DROP INDEX {_ident(table.schema)}.{_ident(key.name)}; CREATE UNIQUE INDEX "
            f"{_ident(key.name)} ON {qualified} ({columns})"
        )
    add = "PRIMARY KEY" if key.kind == "p" else "UNIQUE"
    return (
        f"ALTER TABLE {qualified} DROP CONSTRAINT {_ident(key.name)}, "
        f"ADD CONSTRAINT {_ident(key.name)} {add} ({columns})"
    )


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
    return _Planner(spec, observed, now, database, source).plan()
