"""The planner's first step: is the table what the spec says, from the catalog alone?

It must exist, be partitioned the declared way, have its key columns with fitting types, and
every primary key, unique constraint and unique index must include every partitioning column
(PostgreSQL refuses a partition otherwise, on every attempt). A mismatch is a problem with its
own reason and the fix, planned once and not retried: nothing is sent that the server is known
to refuse. Only a key lacking the sub-partition column lets planning go on (see plan.py).
"""

from __future__ import annotations

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.partitions.bounds import KeyType, fits_identifier
from lokifi_storage.domain.partitions.catalog import ObservedRelation, QName, UniqueKey, key_type_of
from lokifi_storage.domain.partitions.plan_draft import Draft

__all__ = ["check_partitioned", "check_plain"]

INTEGER_TYPES = {"smallint", "integer", "bigint"}


def check_plain(draft: Draft, rel: ObservedRelation, column: str) -> None:
    """A plain table where the spec wants a partitioned one: say how to convert it, and what
    else would stop partitioning it once converted."""
    table = draft.table
    draft.problem(
        Reason.TABLE_NOT_PARTITIONED,
        f"table {table} is a plain table; recreate it as PARTITION BY RANGE "
        f"({column}): rename it, CREATE TABLE {table} (LIKE <old> "
        f"INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE "
        f"({column}), and move the rows",
    )
    found = next((c for c in rel.columns if c.name == column), None)
    if found is None:
        draft.problem(
            Reason.PARTITION_KEY_MISMATCH,
            f"table {table} has no column {column} (partitionBy.column); "
            "name an existing timestamptz, timestamp or date column in the spec",
        )
        return
    if key_type_of(found.type) is None:
        draft.problem(
            Reason.PARTITION_KEY_MISMATCH,
            f"partitionBy column {column} of {table} is {found.type}; "
            "time partitioning needs timestamptz, timestamp or date",
        )
        return
    check_unique_keys(draft, rel, [column])


def check_partitioned(draft: Draft, rel: ObservedRelation, column: str) -> KeyType | None:
    """The key type to plan partitions with, or None when a problem stops planning."""
    table = draft.table
    if rel.key_strategy != "r" or rel.key_columns != (column,):
        kind = {"r": "RANGE", "l": "LIST", "h": "HASH"}.get(rel.key_strategy or "", "?")
        draft.problem(
            Reason.PARTITION_KEY_MISMATCH,
            f"table {table} is PARTITION BY {kind} ({', '.join(rel.key_columns)}); "
            f"the spec expects RANGE ({column})",
        )
        return None
    key_type = key_type_of(rel.key_types[0])
    if key_type is None:
        draft.problem(
            Reason.PARTITION_KEY_MISMATCH,
            f"partition key {column} of {table} is {rel.key_types[0]}; "
            "time partitioning needs timestamptz, timestamp or date",
        )
        return None
    sub = draft.spec.subpartitionBy
    if sub is not None:
        found = next((c for c in rel.columns if c.name == sub.column), None)
        if found is None or found.type not in INTEGER_TYPES:
            draft.sub_possible = False
            draft.problem(
                Reason.PARTITION_KEY_MISMATCH,
                f"subpartitionBy column {sub.column} of {table} must be an "
                f"integer column (found {'missing' if found is None else found.type}); "
                "months are made without sub-partitions until the spec names one",
            )
    if check_unique_keys(draft, rel, [column]):
        return None
    if sub is not None and draft.sub_possible:
        draft.sub_possible = not check_unique_keys(draft, rel, [sub.column], partial=True)
    longest = f"{table.name}_p2026_01_01_s{(sub.count if sub else 0)}"
    longest_index = max((len(i.name) for i in draft.indexes), default=0)
    if not fits_identifier(longest) or longest_index > 63:
        draft.problem(
            Reason.INVALID_SPEC,
            f"table name {table.name} is too long for partition names (PostgreSQL keeps 63 bytes)",
        )
        return None
    return key_type


def check_unique_keys(
    draft: Draft, rel: ObservedRelation, columns: list[str], *, partial: bool = False
) -> bool:
    """A problem for each unique key of `rel` lacking one of `columns`; True if any.

    `partial`: only sub-partitioning is impossible, the months are still made (see plan.py).
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
        draft.problem(
            Reason.KEY_LACKS_PARTITION_COLUMN,
            f"table {draft.table}: {key.describe()} lacks column "
            f"{', '.join(missing)}, and PostgreSQL refuses {what} on "
            f"{', '.join(missing)} unless every unique key includes it{then}. Fix: "
            f"{_key_fix(draft.table, key, missing)}; or {spec_fix}",
        )
    return found


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
