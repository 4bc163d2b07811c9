"""What `lokifi-storage vacuum` runs, in which order: a pure plan over the catalog's answer.

- An ordinary table (or a single partition named directly): `VACUUM (ANALYZE) t`.
- A partitioned table: `VACUUM` on every leaf partition, one at a time, each under the lock
  timeout, each timed; then one `ANALYZE` on the partitioned table. On PostgreSQL 15 that ANALYZE
  refreshes the statistics of the table as a whole *and* of every partition, which is why the
  leaves are not also analysed one by one (that would read every partition twice). The parent's
  own statistics matter: autovacuum never analyses a partitioned table, so without this the
  planner's estimates for queries on the parent go stale forever.
- Without `analyze`, only the VACUUMs.

A leaf reached through two listed names (a parent and one of its partitions) is vacuumed once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Relation", "Step", "TableName", "parse_table_name", "plan_vacuum"]


@dataclass(frozen=True)
class TableName:
    """`[schema.]table` as written in the spec; schema None means the search_path decides."""

    schema: str | None
    table: str

    def __str__(self) -> str:
        return self.table if self.schema is None else f"{self.schema}.{self.table}"


def parse_table_name(text: str) -> TableName:
    """`archive.ai_messages` -> (archive, ai_messages). Names are taken literally, no quoting
    rules: a dot separates schema and table, so table names containing dots are not supported."""
    text = text.strip()
    schema, dot, table = text.partition(".")
    if not dot:
        schema, table = "", text
    if not table or (dot and not schema) or "." in table:
        raise ValueError(f"{text!r} is not a [schema.]table name")
    return TableName(schema or None, table)


@dataclass(frozen=True)
class Relation:
    """A table as the catalog describes it. `leaves` is set for partitioned tables."""

    schema: str
    name: str
    partitioned: bool = False
    leaves: tuple[tuple[str, str], ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Step:
    """One statement: `vacuum` (with or without ANALYZE) or a plain `analyze`."""

    command: str
    schema: str
    name: str
    analyze: bool
    of: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def describe(self) -> str:
        verb = (
            "ANALYZE"
            if self.command == "analyze"
            else ("VACUUM (ANALYZE)" if self.analyze else "VACUUM")
        )
        return f"{verb} {self.qualified}"


def plan_vacuum(
    requested: Sequence[TableName],
    found: Mapping[TableName, Relation | None],
    *,
    analyze: bool,
) -> tuple[list[Step], list[TableName]]:
    """-> (steps in order, requested names that do not exist)."""
    steps: list[Step] = []
    missing: list[TableName] = []
    seen: set[tuple[str, str]] = set()
    for name in requested:
        relation = found.get(name)
        if relation is None:
            missing.append(name)
            continue
        if not relation.partitioned:
            key = (relation.schema, relation.name)
            if key not in seen:
                seen.add(key)
                steps.append(Step("vacuum", relation.schema, relation.name, analyze, str(name)))
            continue
        for schema, leaf in relation.leaves:
            if (schema, leaf) not in seen:
                seen.add((schema, leaf))
                steps.append(Step("vacuum", schema, leaf, False, str(name)))
        if analyze:
            steps.append(Step("analyze", relation.schema, relation.name, True, str(name)))
    return steps, missing
