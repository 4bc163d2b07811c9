"""The pieces every partition step is made of: statements, the checks and guards between
them, and the few expressions (bounds, indexes) that several steps write. psycopg.sql only: every
identifier goes through `sql.Identifier` and every value through `sql.Literal`.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from lokifi_storage.domain.partitions.catalog import Bound, QName
from lokifi_storage.domain.partitions.index_defs import IndexDef

__all__ = [
    "CONCURRENT_LOCK_TIMEOUT_MS",
    "LIKE_OPTIONS",
    "Check",
    "Guard",
    "Statement",
    "Step",
    "copy_out_query",
    "count_query",
    "drop_leftover_index",
    "drop_sql",
    "for_values",
    "ident",
    "index_sql",
    "leftover_index_query",
    "range_predicate",
]

# CREATE INDEX CONCURRENTLY waits for older transactions while holding only a lock that does
# not block reads or writes, so it may wait longer than DDL that blocks traffic.
CONCURRENT_LOCK_TIMEOUT_MS = 60_000

LIKE_OPTIONS = sql.SQL(
    "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION "
    "INCLUDING GENERATED"
)


@dataclass(frozen=True)
class Check:
    """A query whose single boolean result must be true, or the step is rolled back."""

    query: sql.Composable
    message: str


@dataclass(frozen=True)
class Guard:
    """A query whose single boolean result decides whether the rest of the step runs; false
    skips it (not an error): the work is not, or no longer, this step's to do."""

    query: sql.Composable


Statement = sql.Composable | Check | Guard


@dataclass(frozen=True)
class Step:
    """Statements run together. `transaction=False` runs each in autocommit.

    `lock_target` is the relation whose lock holders are named if the step keeps timing out;
    `cleanup` runs (autocommit, best effort) when a non-transactional step fails half way.
    `flush_commit=False` lets the commit return before its WAL reaches disk: only for steps
    whose loss in a server crash is harmless, because the whole transaction is lost with it
    (the next pass does it again) and any later commit that depends on it flushes it first.
    """

    statements: tuple[Statement, ...]
    transaction: bool = True
    lock_target: QName | None = None
    cleanup: tuple[sql.Composable | Guard, ...] = ()
    lock_timeout_ms: int | None = None
    flush_commit: bool = True


def ident(name: QName) -> sql.Identifier:
    return sql.Identifier(name.schema, name.name)


def _in(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


# --- expressions -----------------------------------------------------------------------------


def range_predicate(column: str, bound: Bound) -> sql.Composable:
    return sql.SQL("{col} IS NOT NULL AND {col} >= {lo} AND {col} < {hi}").format(
        col=sql.Identifier(column), lo=sql.Literal(bound.lower), hi=sql.Literal(bound.upper)
    )


def for_values(bound: Bound) -> sql.Composable:
    if bound.is_default:
        return sql.SQL("DEFAULT")
    if bound.lower is None or bound.upper is None:
        raise ValueError("a partition bound needs a lower and an upper value")
    return sql.SQL("FOR VALUES FROM ({}) TO ({})").format(
        sql.Literal(bound.lower), sql.Literal(bound.upper)
    )


def index_sql(
    index: IndexDef, name: str, relation: QName, *, only: bool = False, concurrently: bool = False
) -> sql.Composed:
    """CREATE INDEX for `index` named `name` on `relation` (same schema)."""
    if index.fulltext_column is not None:
        body = sql.SQL("USING gin (to_tsvector({}::regconfig, {}))").format(
            sql.Literal(index.fulltext_language), sql.Identifier(index.fulltext_column)
        )
    else:
        keys = [
            sql.SQL("{}{}{}").format(
                sql.Identifier(k.column),
                sql.SQL(" DESC") if k.desc else sql.SQL(""),
                sql.SQL("")
                if k.nulls_first is None
                else sql.SQL(" NULLS FIRST" if k.nulls_first else " NULLS LAST"),
            )
            for k in index.keys
        ]
        body = sql.SQL("USING btree ({})").format(sql.SQL(", ").join(keys))
    where: sql.Composable = sql.SQL("")
    if index.where_column is not None and index.where_value is not None:
        where = sql.SQL(" WHERE {} = {}").format(
            sql.Identifier(index.where_column), sql.Literal(index.where_value)
        )
    return sql.SQL("CREATE INDEX {conc}{name} ON {only}{rel} {body}{where}").format(
        conc=sql.SQL("CONCURRENTLY ") if concurrently else sql.SQL(""),
        name=sql.Identifier(name),
        only=sql.SQL("ONLY ") if only else sql.SQL(""),
        rel=ident(relation),
        body=body,
        where=where,
    )


def count_query(relation: QName) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(ident(relation))


def drop_sql(relation: QName) -> sql.Composed:
    return sql.SQL("DROP TABLE {}").format(ident(relation))


def copy_out_query(relation: QName) -> sql.Composed:
    """CSV with a header: readable by any tool, loadable with COPY FROM."""
    return sql.SQL("COPY (SELECT * FROM {}) TO STDOUT (FORMAT csv, HEADER)").format(ident(relation))


def leftover_index_query(index: QName) -> sql.Composable:
    """True when `index` exists, is INVALID and no other session is building it right now: a
    leftover of a failed concurrent build, which only the planner's own cleanup may drop. An
    index another session is building is INVALID too until its build ends."""
    return sql.SQL(
        "SELECT coalesce((SELECT NOT x.indisvalid AND NOT EXISTS ("
        "SELECT 1 FROM pg_stat_progress_create_index p"
        " WHERE p.index_relid = x.indexrelid AND p.pid <> pg_backend_pid())"
        " FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = {} AND c.relname = {}), false)"
    ).format(sql.Literal(index.schema), sql.Literal(index.name))


def drop_leftover_index(index: QName) -> tuple[Guard, sql.Composable]:
    """Drop `index` only while it is an INVALID leftover nobody is building."""
    return (
        Guard(leftover_index_query(index)),
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(ident(index)),
    )
