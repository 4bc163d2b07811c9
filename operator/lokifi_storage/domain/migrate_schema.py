"""From a SQLite schema to PostgreSQL tables: type mapping, compatibility, table order. Pure.

Two cases per table. The target does not exist: it is created from the SQLite declaration
(types by SQLite's own affinity rules, refined by the declared names apps use: BOOLEAN,
DATETIME, JSON, UUID), with the primary key, a sequence for a rowid alias, and - when the
resource declares the table with partitionBy - PARTITION BY RANGE on the time column, whose
primary key then also holds the partition columns (PostgreSQL requires it). The target exists
(the app's own migrations made it): every SQLite column must find a column of the same name of
a type a converter exists for, and every target column SQLite does not have must be nullable,
defaulted or generated; each misfit is named with its table and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.sqlite_values import converter_for

__all__ = [
    "ForeignKey",
    "SourceColumn",
    "SourceIndex",
    "SourceTable",
    "TargetColumn",
    "TargetTable",
    "compatibility_problems",
    "load_order",
    "pg_type_for",
    "planned_target",
    "target_name",
]


@dataclass(frozen=True)
class SourceColumn:
    """A column as `PRAGMA table_xinfo` shows it. `pk` is its position in the key, 0 if none."""

    name: str
    declared: str
    not_null: bool = False
    default: str | None = None
    pk: int = 0
    hidden: bool = False  # generated (virtual or stored) columns: never copied


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    references: tuple[str | None, ...]


@dataclass(frozen=True)
class SourceIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class SourceTable:
    """A SQLite table: its columns, keys and indexes. `rowid` False for WITHOUT ROWID tables."""

    name: str
    columns: tuple[SourceColumn, ...]
    rowid: bool = True
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[SourceIndex, ...] = ()

    @property
    def copied(self) -> tuple[SourceColumn, ...]:
        return tuple(c for c in self.columns if not c.hidden)

    @property
    def primary_key(self) -> tuple[str, ...]:
        keyed = sorted((c for c in self.columns if c.pk), key=lambda c: c.pk)
        return tuple(c.name for c in keyed)

    @property
    def rowid_alias(self) -> str | None:
        """The INTEGER PRIMARY KEY column, which is SQLite's rowid under another name."""
        key = [c for c in self.columns if c.pk]
        if self.rowid and len(key) == 1 and key[0].declared.strip().upper() == "INTEGER":
            return key[0].name
        return None


@dataclass(frozen=True)
class TargetColumn:
    """A PostgreSQL column: `type` as format_type prints it."""

    name: str
    type: str
    not_null: bool = False
    has_default: bool = False
    generated: bool = False
    serial: bool = False  # created as bigserial (a sequence default)


@dataclass(frozen=True)
class TargetTable:
    """A target table, observed or to be created."""

    qname: QName
    columns: tuple[TargetColumn, ...]
    primary_key: tuple[str, ...] = ()
    partition_column: str | None = None
    exists: bool = False

    def column(self, name: str) -> TargetColumn | None:
        return next((c for c in self.columns if c.name == name), None)


def target_name(source: str, declared: Sequence[TableSpec]) -> tuple[QName, TableSpec | None]:
    """Where the SQLite table `source` goes: the declared table of that name (in whatever schema
    the resource puts it), else public.<source>."""
    for spec in declared:
        qname = QName.parse(spec.name)
        if qname.name == source:
            return qname, spec
    return QName("public", source), None


def pg_type_for(declared: str) -> str:
    """The PostgreSQL type for a SQLite declared type: SQLite's affinity rules (INT, then
    CHAR/CLOB/TEXT, then BLOB or none, then REAL/FLOA/DOUB, else NUMERIC), with the names that
    apps declare for booleans, times, JSON and UUIDs checked first."""
    d = declared.upper()
    if "BOOL" in d:
        return "boolean"
    if "TIMESTAMP" in d or "DATETIME" in d:
        return "timestamp with time zone"
    if d.strip() == "DATE":
        return "date"
    if "JSON" in d:
        return "jsonb"
    if "UUID" in d:
        return "uuid"
    if "INT" in d:
        return "bigint"
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return "text"
    if "BLOB" in d:
        return "bytea"
    if not d.strip():
        return "text"
    if "REAL" in d or "FLOA" in d or "DOUB" in d:
        return "double precision"
    return "numeric"


def planned_target(source: SourceTable, qname: QName, spec: TableSpec | None) -> TargetTable:
    """The table to create for `source` when the target does not exist."""
    by = spec.partitionBy if spec is not None else None
    sub = spec.subpartitionBy if spec is not None else None
    serial = source.rowid_alias
    key = list(source.primary_key)
    if by is not None:
        for extra in (by.column, sub.column if sub else None):
            if extra is not None and key and extra not in key:
                key.append(extra)
    columns: list[TargetColumn] = []
    for column in source.copied:
        if by is not None and column.name == by.column:
            pg_type = "timestamp with time zone"
        elif sub is not None and column.name == sub.column:
            pg_type = "bigint"
        else:
            pg_type = pg_type_for(column.declared)
        columns.append(
            TargetColumn(
                name=column.name,
                type=pg_type,
                not_null=column.not_null or column.name in key,
                has_default=column.name == serial,
                serial=column.name == serial,
            )
        )
    return TargetTable(
        qname=qname,
        columns=tuple(columns),
        primary_key=tuple(key),
        partition_column=by.column if by is not None else None,
    )


def compatibility_problems(source: SourceTable, target: TargetTable) -> list[str]:
    """Why rows of `source` cannot go into the existing `target`; empty when they can."""
    problems: list[str] = []
    names = {c.name for c in source.copied}
    for column in source.copied:
        found = target.column(column.name)
        where = f"{target.qname}.{column.name}"
        if found is None:
            problems.append(
                f"{where}: the SQLite column {source.name}.{column.name} has no column in the "
                "target table; add it (or drop it from the SQLite table)"
            )
            continue
        if found.generated:
            problems.append(f"{where} is a generated column; rows cannot be loaded into it")
            continue
        try:
            converter_for(found.type)
        except ValueError:
            problems.append(
                f"{where} is {found.type}, which SQLite's {column.declared or 'untyped'} column "
                f"cannot be loaded into; make it one of text, integer types, boolean, "
                "timestamptz, timestamp, date, double precision, numeric, jsonb, json, bytea "
                "or uuid"
            )
            continue
        if "BLOB" in column.declared.upper() and found.type not in ("bytea", "uuid"):
            problems.append(
                f"{where} is {found.type} but {source.name}.{column.name} is declared BLOB; "
                "make it bytea"
            )
    for extra in target.columns:
        if extra.name in names or extra.generated or extra.has_default:
            continue
        if extra.not_null:
            problems.append(
                f"{target.qname}.{extra.name} is NOT NULL without a default and the SQLite "
                f"table {source.name} has no such column; give it a default or allow NULL"
            )
    return problems


@dataclass
class _Visit:
    done: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)


def load_order(tables: Sequence[SourceTable]) -> list[SourceTable]:
    """Referenced tables before the tables referencing them (existing targets may enforce
    their foreign keys during the load); cycles and self-references keep SQLite's order."""
    by_name = {t.name: t for t in tables}
    state = _Visit()

    def visit(name: str) -> None:
        if name in state.done or name in state.active or name not in by_name:
            return
        state.active.add(name)
        for fk in by_name[name].foreign_keys:
            if fk.table != name:
                visit(fk.table)
        state.active.discard(name)
        state.done.add(name)
        state.order.append(name)

    for table in tables:
        visit(table.name)
    return [by_name[n] for n in state.order]
