"""The SQL of `migrate sqlite`, as psycopg.sql compositions. No I/O happens here.

Composing it needs no connection; it sits beside clients/migrate_target.py, which runs it.
Partitions are not made here: the partition planner and domain/partitions/steps.py make them,
as the reconciler would.

The verification reads the rows back with COPY TO, each column through its canonical
expression, which prints a stored value exactly as the converter of domain/sqlite_values.py
wrote it into COPY (escaped the same way), except for double precision, whose canonical form is
its eight bytes in hex on both sides (jobs/migrate_convert.py); so the digest of a row is md5 of
the same bytes on both sides. The digest of a table is the sum of the first 64 bits of every
row's md5, as signed integers: order-independent, and duplicates count twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from lokifi_storage.domain.migrate_schema import SourceIndex, TargetColumn, TargetTable
from lokifi_storage.domain.partitions.catalog import QName

__all__ = [
    "STATE_SCHEMA",
    "add_primary_key",
    "canonical_expression",
    "copy_out_statement",
    "copy_statement",
    "create_table",
    "foreign_key",
    "ident",
    "index_statement",
    "leaves_query",
    "set_sequences",
    "stamp_kinds",
    "state_tables",
]

STATE_SCHEMA = "lokifi_migrate"


def ident(name: QName) -> sql.Identifier:
    return sql.Identifier(name.schema, name.name)


def ident_text(name: QName) -> str:
    """`name` quoted as regclass input reads it (pg_get_serial_sequence takes text)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (name.schema, name.name))


def state_tables() -> list[sql.Composed]:
    """The checkpoints (one row per source table, one per committed chunk) and the rejects,
    in their own schema."""
    schema = sql.Identifier(STATE_SCHEMA)
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.checkpoints ("
            " source_table text PRIMARY KEY,"
            " target_table text NOT NULL,"
            " finished boolean NOT NULL DEFAULT false,"
            " created boolean NOT NULL DEFAULT false,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(schema),
        # One row per committed chunk: the source rows (after_rowid, last_rowid] it covered.
        # Chunks commit out of order with several writers, so a resume needs every range.
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.chunks ("
            " source_table text NOT NULL,"
            " after_rowid bigint NOT NULL,"
            " last_rowid bigint NOT NULL,"
            " rows_copied bigint NOT NULL,"
            " rows_rejected bigint NOT NULL,"
            " digest numeric,"
            " committed_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (source_table, after_rowid))"
        ).format(schema),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.rejects ("
            " id bigserial PRIMARY KEY,"
            " source_table text NOT NULL,"
            " target_table text NOT NULL,"
            " row_key text NOT NULL,"
            " column_name text,"
            " reason text NOT NULL,"
            " value text,"
            " rejected_at timestamptz NOT NULL DEFAULT now())"
        ).format(schema),
    ]


def create_table(table: TargetTable, *, with_primary_key: bool = True) -> sql.Composed:
    """CREATE TABLE; without the primary key when it is built after the rows (its columns are
    NOT NULL all the same, so adding it later needs no scan for NULLs)."""
    columns = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL("bigserial" if c.serial else c.type),
            sql.SQL(" NOT NULL")
            if (c.not_null or c.name in table.primary_key) and not c.serial
            else sql.SQL(""),
        )
        for c in table.columns
    ]
    if table.primary_key and with_primary_key:
        columns.append(
            sql.SQL("PRIMARY KEY ({})").format(
                sql.SQL(", ").join(sql.Identifier(k) for k in table.primary_key)
            )
        )
    partition = (
        sql.SQL(" PARTITION BY RANGE ({})").format(sql.Identifier(table.partition_column))
        if table.partition_column
        else sql.SQL("")
    )
    return sql.SQL("CREATE TABLE {} ({}){}").format(
        ident(table.qname), sql.SQL(", ").join(columns), partition
    )


def add_primary_key(relation: QName, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
        ident(relation), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def canonical_expression(column: TargetColumn) -> sql.Composable:
    """What COPY TO is asked to print for the column so that its text field is byte for byte
    the field the converter sent: the column itself (COPY applies the same output functions
    and escapes, and prints NULL as \\N), except for double precision, compared by its bits
    since PostgreSQL's shortest float text is not always Python's. Times are printed as the
    server prints them and given their six fractional digits where they are hashed
    (`stamp_kinds`): to_char cost the server a quarter of the read-back."""
    col = sql.Identifier(column.name)
    base = column.type.partition("(")[0].strip()
    if base == "date":
        return sql.SQL("to_char({}, 'YYYY-MM-DD')").format(col)
    if base == "double precision":
        return sql.SQL("encode(float8send({}), 'hex')").format(col)
    if base == "bytea":  # hex whatever the server's bytea_output
        return sql.SQL("{} || encode({}, 'hex')").format(sql.Literal("\\x"), col)
    return col


def stamp_kinds(columns: Sequence[TargetColumn]) -> bytes:
    """A byte per column for digest_lines: 1 timestamptz, 2 timestamp, 0 any other type."""
    kinds = {"timestamp with time zone": 1, "timestamp without time zone": 2}
    return bytes(kinds.get(c.type.partition("(")[0].strip(), 0) for c in columns)


def copy_out_statement(relation: QName, columns: Sequence[TargetColumn]) -> sql.Composed:
    """The rows of `relation` as the lines the verification hashes (one per row)."""
    return sql.SQL("COPY (SELECT {} FROM ONLY {}) TO STDOUT").format(
        sql.SQL(", ").join(canonical_expression(c) for c in columns), ident(relation)
    )


def leaves_query(relations: Sequence[QName]) -> sql.Composed:
    """The leaf tables under `relations` (a plain table is its own leaf), largest first."""
    return sql.SQL(
        "SELECT n.nspname, c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND c.oid IN ("
        "  SELECT t.relid FROM unnest({}::regclass[]) AS r(rel),"
        "  LATERAL (SELECT r.rel AS relid UNION SELECT relid FROM pg_partition_tree(r.rel)) t)"
        " ORDER BY c.relpages DESC, 1, 2"
    ).format(sql.Literal([ident_text(r) for r in relations]))


def copy_statement(relation: QName, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        ident(relation), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def index_statement(table: QName, index: SourceIndex) -> sql.Composed:
    return sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.SQL("UNIQUE ") if index.unique else sql.SQL(""),
        sql.Identifier(index.name),
        ident(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in index.columns),
    )


def foreign_key(
    table: QName, name: str, columns: Sequence[str], target: QName, references: Sequence[str]
) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})").format(
        ident(table),
        sql.Identifier(name),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        ident(target),
        sql.SQL(", ").join(sql.Identifier(c) for c in references),
    )


def set_sequences(table: QName, relations: Sequence[QName], columns: Sequence[str]) -> sql.Composed:
    """setval of every sequence behind `columns` (serial or identity) past the loaded maximum,
    counting the archive's rows too."""
    statements = []
    for column in columns:
        maximum = sql.SQL("greatest({})").format(
            sql.SQL(", ").join(
                sql.SQL("(SELECT max({}) FROM {})").format(sql.Identifier(column), ident(r))
                for r in relations
            )
        )
        statements.append(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({}, {}), coalesce({}, 0) + 1, false)"
            ).format(
                sql.Literal(ident_text(table)),
                sql.Literal(column),
                maximum,
            )
        )
    return sql.SQL("; ").join(statements)
