"""One table's plan while it is being made: what every step of plan.py reads and adds to.

The steps are plain functions over a Draft so that each one can be read alone; the order they
run in, and why, is plan.py's.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.actions import Action, CreatePartition, NewRelation
from lokifi_storage.domain.partitions.bounds import KeyType, TimeRange, bound_literal, to_utc
from lokifi_storage.domain.partitions.catalog import Bound, ObservedRelation, ObservedTable, QName
from lokifi_storage.domain.partitions.index_defs import IndexDef, index_def_from_spec
from lokifi_storage.domain.partitions.index_plan import Problem

__all__ = ["Draft", "Ranged", "descendants", "time_bound", "time_range"]

# A partition with the time range its bound covers (None: not a time range we can read).
Ranged = tuple[ObservedRelation, TimeRange | None]


@dataclass
class Draft:
    """The inputs of one table's plan and what the steps have planned so far."""

    spec: TableSpec
    observed: ObservedTable
    now: dt.datetime
    database: str
    source: str
    table: QName
    indexes: tuple[IndexDef, ...]
    actions: list[Action] = field(default_factory=list)
    deferred: list[Action] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sub_possible: bool = True  # False when a unique key lacks the sub-partition column

    @classmethod
    def start(
        cls, spec: TableSpec, observed: ObservedTable, now: dt.datetime, database: str, source: str
    ) -> Draft:
        problems: list[Problem] = []
        indexes: list[IndexDef] = []
        for index in spec.indexes:
            try:
                indexes.append(index_def_from_spec(index))
            except ValueError as error:
                problems.append(Problem(Reason.INVALID_SPEC, str(error)))
        return cls(
            spec=spec,
            observed=observed,
            now=to_utc(now),
            database=database,
            source=source,
            table=QName.parse(spec.name),
            indexes=tuple(indexes),
            problems=problems,
        )

    def problem(self, reason: str, message: str) -> None:
        self.problems.append(Problem(reason, message))

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


def time_range(rel: ObservedRelation) -> TimeRange | None:
    if rel.bound is None:
        return None
    return _bound_range(rel.bound)


@functools.lru_cache(maxsize=65_536)
def _bound_range(bound: Bound) -> TimeRange | None:
    """Parsed once per bound text: every pass plans again from the same (cached) catalog."""
    pair = bound.time_range()
    if pair is None or not pair[0] < pair[1]:
        return None
    return TimeRange(pair[0], pair[1])


def time_bound(r: TimeRange, key_type: KeyType) -> Bound:
    return Bound(lower=bound_literal(r.start, key_type), upper=bound_literal(r.end, key_type))


def descendants(rel: ObservedRelation) -> tuple[QName, ...]:
    out: list[QName] = []
    for child in rel.children:
        out.append(child.qname)
        out.extend(descendants(child))
    return tuple(out)
