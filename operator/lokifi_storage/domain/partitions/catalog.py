"""What the catalog says about a managed table: plain data, built by clients/postgres/partitions.py.

The client turns one catalog query into these objects; the planner reads only these. Keeping
the shape here (and not psycopg rows) is what lets the planner be unit-tested with hand-built
trees of partitions, including states only a crash can produce (an INVALID index left by an
interrupted CREATE INDEX CONCURRENTLY, a partition stuck "detach pending", a partition detached
but not yet attached to the archive).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from lokifi_storage.domain.partitions.bounds import KeyType, parse_bound_literal

__all__ = [
    "ARCHIVE_MARKER",
    "BOUNDS_CHECK",
    "Bound",
    "Column",
    "IndexKey",
    "ObservedIndex",
    "ObservedRelation",
    "ObservedTable",
    "QName",
    "UniqueKey",
    "key_type_of",
    "parse_partition_bound",
]

# The names of the constraints the operator puts on its partitions, which the planner reads
# back from the catalog:
BOUNDS_CHECK = "lokifi_bounds"  # CHECK (key within the partition's time range)
# CHECK (true) NOT VALID, set just before a concurrent DETACH and dropped by the ATTACH to the
# archive: a detached table that carries it was left by an interrupted archive run; one that
# does not was detached by someone else, on purpose, and is never adopted.
ARCHIVE_MARKER = "lokifi_archiving"


@dataclass(frozen=True, order=True)
class QName:
    """A schema-qualified relation name."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    @classmethod
    def parse(cls, text: str, default_schema: str = "public") -> QName:
        """`schema.table` or `table` (in `default_schema`), as written in the spec."""
        schema, dot, name = text.partition(".")
        return cls(schema, name) if dot else cls(default_schema, text)


@dataclass(frozen=True)
class Bound:
    """A single-column RANGE bound as PostgreSQL prints it, or DEFAULT.

    `lower`/`upper` are the literal texts without quotes (e.g. "2026-01-01 00:00:00+00" or
    "1000000"); None for a DEFAULT partition. Anything else (MINVALUE, multi-column) is
    `unsupported` and such partitions are left alone.
    """

    lower: str | None = None
    upper: str | None = None
    is_default: bool = False
    unsupported: bool = False

    def time_range(self) -> tuple[dt.datetime, dt.datetime] | None:
        if self.lower is None or self.upper is None:
            return None
        lower, upper = parse_bound_literal(self.lower), parse_bound_literal(self.upper)
        if lower is None or upper is None:
            return None
        return lower, upper

    def int_range(self) -> tuple[int, int] | None:
        if self.lower is None or self.upper is None:
            return None
        try:
            return int(self.lower), int(self.upper)
        except ValueError:
            return None


_RANGE_BOUND = re.compile(r"FOR VALUES FROM \((.*)\) TO \((.*)\)", re.DOTALL)
_LITERAL = re.compile(r"^'((?:[^']|'')*)'$|^(-?\d+)$")


def _literal(text: str) -> str | None:
    match = _LITERAL.match(text.strip())
    if match is None:
        return None
    if match.group(1) is not None:
        return match.group(1).replace("''", "'")
    return match.group(2)


def parse_partition_bound(text: str | None) -> Bound:
    """Read `pg_get_expr(relpartbound, oid)` output."""
    if text is None:
        return Bound(unsupported=True)
    if text.strip() == "DEFAULT":
        return Bound(is_default=True)
    match = _RANGE_BOUND.fullmatch(text.strip())
    if match is None:
        return Bound(unsupported=True)
    lower, upper = _literal(match.group(1)), _literal(match.group(2))
    if lower is None or upper is None:
        return Bound(unsupported=True)
    return Bound(lower=lower, upper=upper)


@dataclass(frozen=True)
class Column:
    """A column of the managed table. `toastable` marks the large text/json/bytea columns
    that compression rewrites; `lz4` whether the column is already set to lz4."""

    name: str
    type: str
    generated: bool = False
    toastable: bool = False
    lz4: bool = False


@dataclass(frozen=True)
class IndexKey:
    """One key of an index: its column or expression as PostgreSQL prints it, DESC, and
    whether NULLs sort first (PostgreSQL's default is first for DESC, last for ASC)."""

    text: str
    desc: bool = False
    nulls_first: bool = False


@dataclass(frozen=True)
class ObservedIndex:
    """An index on one relation of the tree."""

    name: str
    valid: bool
    method: str
    keys: tuple[IndexKey, ...]
    predicate: str | None = None
    parent: QName | None = None  # the partitioned index it is attached to
    partitioned: bool = False


@dataclass(frozen=True)
class UniqueKey:
    """A primary key, unique constraint or unique index of a managed table: PostgreSQL refuses
    any partition (or sub-partition) whose key column it lacks, so the planner checks them
    before creating one. `kind` is "p" (primary key), "u" (unique constraint) or "i" (a unique
    index without a constraint); `columns` are its key columns (INCLUDE columns left out)."""

    name: str
    kind: str
    columns: tuple[str, ...]

    def describe(self) -> str:
        what = {"p": "PRIMARY KEY", "u": "UNIQUE constraint", "i": "unique index"}[self.kind]
        return f"{what} {self.name} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class ObservedRelation:
    """A table of the tree: the parent, a partition, a sub-partition, or a detached orphan."""

    qname: QName
    kind: str  # "r" plain table, "p" partitioned table
    bound: Bound | None = None  # None when it is not a partition
    detach_pending: bool = False
    key_strategy: str | None = None  # "r" range, "l" list, "h" hash for partitioned tables
    key_columns: tuple[str, ...] = ()
    key_types: tuple[str, ...] = ()
    indexes: tuple[ObservedIndex, ...] = ()
    checks: tuple[str, ...] = ()  # validated CHECK constraints, by name
    unvalidated_checks: tuple[str, ...] = ()  # CHECK constraints added NOT VALID
    columns: tuple[Column, ...] = ()
    size_bytes: int = 0  # heap bytes; observed for DEFAULT partitions only
    unique_keys: tuple[UniqueKey, ...] = ()  # observed for the managed table itself only
    children: tuple[ObservedRelation, ...] = ()
    # COMMENT ON TABLE: where a kept export says why, and (managed table) who manages it
    comment: str | None = None

    @property
    def partitioned(self) -> bool:
        return self.kind == "p"

    def index_named(self, name: str) -> ObservedIndex | None:
        for index in self.indexes:  # a loop, not next(generator): planned per partition
            if index.name == name:
                return index
        return None

    def index_attached_to(self, parent: QName) -> ObservedIndex | None:
        for index in self.indexes:
            if index.parent == parent:
                return index
        return None

    def default_child(self) -> ObservedRelation | None:
        return next((c for c in self.children if c.bound and c.bound.is_default), None)

    def leaves(self) -> list[ObservedRelation]:
        if not self.partitioned:
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]

    @property
    def lz4(self) -> bool:
        """Every large column of every leaf is stored with lz4 (nothing left to compress)."""
        return all(c.lz4 for leaf in self.leaves() for c in leaf.columns if c.toastable)


@dataclass(frozen=True)
class ObservedTable:
    """A managed table as observed: the table's tree, its archive tree, orphans, DEFAULT rows.

    `default_buckets` counts the rows of the top DEFAULT partition per interval start (exact,
    from a GROUP BY the client runs only when the DEFAULT partition has any pages at all).
    """

    qname: QName
    relation: ObservedRelation | None = None
    archive: ObservedRelation | None = None
    packed: ObservedRelation | None = None  # <archive>_packed: packed months as partitions
    orphans: tuple[ObservedRelation, ...] = ()
    default_buckets: tuple[tuple[dt.datetime, int], ...] = ()
    default_rows_outside_buckets: int = 0

    @property
    def default_rows(self) -> int:
        return sum(n for _, n in self.default_buckets) + self.default_rows_outside_buckets


_KEY_TYPES: dict[str, KeyType] = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "date": "date",
}


def key_type_of(type_name: str) -> KeyType | None:
    """The bound flavour for a partition key of this SQL type; None when it is not a time."""
    base = re.sub(r"\(\d+\)", "", type_name).strip()
    return _KEY_TYPES.get(base)
