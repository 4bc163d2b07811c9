"""The SQL of packing and unpacking archived months (pack_layout.py), as psycopg.sql
compositions. No I/O happens here; identifiers go through sql.Identifier, bounds through
sql.Literal, and no type name is ever written as text: the packed table takes its column types
from the archive table itself (CREATE TABLE ... AS SELECT ... WITH NO DATA), the read function
its argument types by `%TYPE`.

Both directions are one transaction each: build the other form beside the old one, prove it
holds the same rows (count and a 128-bit digest of the text of every row, every column, on
both forms), then detach and drop the old form and attach the new one. A kill at any point
before COMMIT leaves the old form as it was; after it, the new one. Nothing in between is ever
visible.

The digest is a sum of per-row hashes, so it needs no sort and does not depend on the order
rows are stored in; a missing, added, duplicated or altered row, or a value moved to another
row, changes it.
"""

from __future__ import annotations

from psycopg import sql

from lokifi_storage.domain.partitions.actions import CreatePartition, ExportPartition
from lokifi_storage.domain.partitions.catalog import BOUNDS_CHECK, Bound, QName
from lokifi_storage.domain.partitions.index_defs import derived_name
from lokifi_storage.domain.partitions.pack import PackPartition, UnpackPartition
from lokifi_storage.domain.partitions.pack_layout import GROUP_ROWS, PackLayout, segment_comment
from lokifi_storage.domain.partitions.statements import (
    Check,
    Statement,
    Step,
    copy_out_query,
    ident,
)
from lokifi_storage.domain.partitions.steps import steps_for

__all__ = [
    "digest_query",
    "ensure_steps",
    "export_copy_query",
    "pack_steps",
    "plain_select",
    "unpack_steps",
    "unpacked_copy_query",
    "unpacked_select",
]

_P = sql.Identifier("p")
_METHODS = {"pglz": sql.SQL("pglz"), "lz4": sql.SQL("lz4")}
_U = sql.Identifier("u")


def _cols(names: tuple[str, ...] | list[str], alias: sql.Identifier | None = None) -> sql.Composed:
    if alias is None:
        return sql.SQL(", ").join(sql.Identifier(n) for n in names)
    return sql.SQL(", ").join(sql.SQL("{}.{}").format(alias, sql.Identifier(n)) for n in names)


def _names(layout: PackLayout) -> list[str]:
    return [c.name for c in layout.columns]


def unpacked_select(layout: PackLayout, source: QName) -> sql.Composed:
    """The original rows (original columns, in order) of a packed relation: a month or the
    whole packed table. `unnest(a, b, ...)` walks the arrays of a stored row in step."""
    names = _names(layout)
    return sql.SQL(
        "SELECT {out} FROM {src} AS p CROSS JOIN LATERAL unnest({arrays}) AS u({names})"
    ).format(
        out=_cols(names, _U),
        src=ident(source),
        arrays=_cols(names, _P),
        names=_cols(names),
    )


def plain_select(layout: PackLayout, source: QName) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {}").format(_cols(_names(layout)), ident(source))


def unpacked_copy_query(layout: PackLayout, packed: QName) -> sql.Composed:
    """COPY of a packed month as the CSV an ordinary month exports: same header, same columns."""
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(
        unpacked_select(layout, packed)
    )


def export_copy_query(action: ExportPartition) -> sql.Composed:
    """What an export streams: the partition's rows, a packed month's unpacked."""
    if action.unpack is None:
        return copy_out_query(action.partition)
    return unpacked_copy_query(action.unpack, action.partition)


def _digest(layout: PackLayout, rows: sql.Composable) -> sql.Composed:
    """(row count, two 64-bit hash sums) of the text of every row of `rows`."""
    return sql.SQL(
        "SELECT row(count(*), sum(hashtextextended(t, 0)), sum(hashtextextended(t, 1)))"
        " FROM (SELECT row({cols})::text AS t FROM ({rows}) AS r) AS d"
    ).format(cols=_cols(_names(layout), sql.Identifier("r")), rows=rows)


def digest_query(layout: PackLayout, plain: QName, packed: QName) -> sql.Composed:
    """True when the plain relation and the packed one hold the same rows."""
    return sql.SQL("SELECT ({}) IS NOT DISTINCT FROM ({})").format(
        _digest(layout, plain_select(layout, plain)),
        _digest(layout, unpacked_select(layout, packed)),
    )


def _time_check(name: QName, column: str, bound: Bound) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({c} >= {lo} AND {c} < {hi})").format(
        ident(name),
        sql.Identifier(BOUNDS_CHECK),
        c=sql.Identifier(column),
        lo=sql.Literal(bound.lower),
        hi=sql.Literal(bound.upper),
    )


def _for_values(bound: Bound) -> sql.Composed:
    return sql.SQL("FOR VALUES FROM ({}) TO ({})").format(
        sql.Literal(bound.lower), sql.Literal(bound.upper)
    )


# --- the packed table, its view and its read function ------------------------------------------


def _key(segment: tuple[str, ...], alias: sql.Identifier | None = None) -> sql.Composed:
    """The text of a group's key, as lokifi_keys holds it."""
    return sql.SQL("row({})::text").format(_cols(segment, alias))


def ensure_steps(layout: PackLayout) -> list[Step]:
    """Create the packed table, the view of every archived row and the per-group function.

    The packed table's columns are typed by a query over the archive table (no type is ever
    spelled here): one array per column of the table, and the meta columns."""
    template = QName(layout.archive.schema, derived_name(layout.parent.name, "template"))
    t = sql.Identifier(layout.time_column)
    shape: list[sql.Composable] = [
        sql.SQL("ARRAY[{}] AS lokifi_keys").format(_key(layout.segment)),
        sql.SQL("0::integer AS lokifi_rows"),
        sql.SQL("{} AS lokifi_first").format(t),
        sql.SQL("{} AS lokifi_last").format(t),
    ]
    shape += [
        sql.SQL("ARRAY[{}] AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name))
        for c in layout.columns
    ]
    statements: list[Statement] = [
        sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
            ident(template), sql.SQL(", ").join(shape), ident(layout.archive)
        ),
        sql.SQL("CREATE TABLE {} (LIKE {}) PARTITION BY RANGE (lokifi_first)").format(
            ident(layout.parent), ident(template)
        ),
        sql.SQL("DROP TABLE {}").format(ident(template)),
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            ident(layout.parent), sql.Literal(segment_comment(layout.segment))
        ),
        sql.SQL("CREATE INDEX {} ON {} USING gin (lokifi_keys)").format(
            sql.Identifier(derived_name(layout.parent.name, "keys")), ident(layout.parent)
        ),
        *read_path_statements(layout),
    ]
    return [Step(tuple(statements), lock_target=layout.archive)]


def read_path_statements(layout: PackLayout) -> list[Statement]:
    """CREATE OR REPLACE of the view and the function (they depend on both tables)."""
    names = _names(layout)
    view = sql.SQL("CREATE OR REPLACE VIEW {} AS {} UNION ALL {}").format(
        ident(layout.view),
        plain_select(layout, layout.archive),
        unpacked_select(layout, layout.parent),
    )
    args = sql.SQL(", ").join(
        sql.SQL("{} {}%TYPE").format(
            sql.Identifier(c), sql.Identifier(layout.archive.schema, layout.archive.name, c)
        )
        for c in layout.segment
    )
    params = [sql.SQL("${}").format(sql.SQL(str(i))) for i in range(1, len(layout.segment) + 1)]

    def matches(alias: sql.Identifier) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}").format(alias, sql.Identifier(c), p)
            for c, p in zip(layout.segment, params, strict=True)
        )

    plain = sql.SQL("{} AS a WHERE {}").format(
        plain_select(layout, layout.archive), matches(sql.Identifier("a"))
    )
    packed = sql.SQL("{} WHERE p.lokifi_keys @> ARRAY[row({})::text] AND {}").format(
        unpacked_select(layout, layout.parent), sql.SQL(", ").join(params), matches(_U)
    )
    function = sql.SQL(
        "CREATE OR REPLACE FUNCTION {fn}({args}) RETURNS SETOF {rowtype} LANGUAGE sql STABLE "
        "BEGIN ATOMIC SELECT {cols} FROM ({plain} UNION ALL {packed}) AS r ORDER BY r.{t}; END"
    ).format(
        fn=ident(layout.function),
        args=args,
        rowtype=ident(layout.archive),
        cols=_cols(names, sql.Identifier("r")),
        plain=plain,
        packed=packed,
        t=sql.Identifier(layout.time_column),
    )
    return [view, function]


# --- pack ------------------------------------------------------------------------------------


def _pack_insert(layout: PackLayout, work: QName, month: QName) -> sql.Composed:
    """Number the rows in (segment, time) order, give each group the number of its first row,
    and cut stored rows every pack_rows rows at group boundaries (and every GROUP_ROWS rows of
    one group)."""
    t = sql.Identifier(layout.time_column)
    seg = _cols(layout.segment)
    names = _names(layout)
    aggregates = sql.SQL(", ").join(
        sql.SQL("array_agg({} ORDER BY lokifi_n)").format(sql.Identifier(c)) for c in names
    )
    return sql.SQL(
        "INSERT INTO {work} (lokifi_keys, lokifi_rows, lokifi_first, lokifi_last, {cols}) "
        "SELECT array_agg(DISTINCT {key}), count(*), min({t}), max({t}), {aggregates} "
        "FROM (SELECT *, min(lokifi_n) OVER (PARTITION BY {seg}) AS lokifi_start "
        "FROM (SELECT {cols}, row_number() OVER (ORDER BY {seg}, {t}) AS lokifi_n, "
        "row_number() OVER (PARTITION BY {seg} ORDER BY {t}) AS lokifi_g FROM {month}) AS a"
        ") AS s "
        "GROUP BY (lokifi_start - 1) / {pack}, (lokifi_g - 1) / {group}"
    ).format(
        work=ident(work),
        cols=_cols(names),
        key=_key(layout.segment),
        t=t,
        aggregates=aggregates,
        seg=seg,
        month=ident(month),
        pack=sql.Literal(layout.pack_rows),
        group=sql.Literal(GROUP_ROWS),
    )


def pack_steps(a: PackPartition) -> list[Step]:
    """Pack, verify, swap: one transaction. The month stays readable (SHARE lock) until the
    final DETACH, which waits for readers under lock_timeout."""
    layout = a.layout
    work = QName(a.month.schema, derived_name(a.month.name, "packing"))
    statements: list[Statement] = [
        sql.SQL("LOCK TABLE {} IN SHARE MODE").format(ident(a.month)),
        sql.SQL("CREATE TABLE {} (LIKE {})").format(ident(work), ident(layout.parent)),
        sql.SQL("ALTER TABLE {} {}").format(
            ident(work),
            sql.SQL(", ").join(
                sql.SQL("ALTER COLUMN {} SET COMPRESSION {}").format(
                    sql.Identifier(c), _METHODS[layout.compression]
                )
                for c in ("lokifi_keys", *_names(layout))
            ),
        ),
        _pack_insert(layout, work, a.month),
        Check(
            digest_query(layout, a.month, work),
            f"the packed copy of {a.month} differs from it (row count or digest); nothing "
            "was changed",
        ),
        _time_check(work, "lokifi_first", a.bound),
        sql.SQL("CREATE INDEX {} ON {} USING gin (lokifi_keys)").format(
            sql.Identifier(derived_name(a.month.name, "keys")), ident(work)
        ),
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(ident(layout.archive), ident(a.month)),
        sql.SQL("DROP TABLE {}").format(ident(a.month)),
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(work), sql.Identifier(a.month.name)),
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(
            ident(layout.parent), ident(a.month), _for_values(a.bound)
        ),
    ]
    return [Step(tuple(statements), lock_target=layout.archive)]


# --- unpack ----------------------------------------------------------------------------------


def unpack_steps(a: UnpackPartition) -> list[Step]:
    """Recreate the ordinary month (the spec's sub-partitions and indexes, as the partition
    planner makes them), fill it from the packed month, verify, swap: one transaction."""
    layout = a.layout
    work = QName(a.packed.schema, derived_name(a.packed.name, "unpacking"))
    create = steps_for(
        CreatePartition(
            a.table,
            parent=layout.archive,
            partition=a.month,
            column=layout.time_column,
            move_from=None,
            columns=(),
            indexes=a.indexes,
        )
    )
    made = [s for step in create for s in step.statements]
    insertable = [c.name for c in layout.columns if not c.generated]
    statements: list[Statement] = [
        # The packed month gives up its name to the month being restored.
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(a.packed), sql.Identifier(work.name)),
        *made[:-1],  # everything but the final ATTACH
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ({}) AS r").format(
            ident(a.month.qname),
            _cols(insertable),
            _cols(insertable, sql.Identifier("r")),
            unpacked_select(layout, work),
        ),
        Check(
            digest_query(layout, a.month.qname, work),
            f"the unpacked copy of {a.packed} differs from it (row count or digest); nothing "
            "was changed",
        ),
        sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(ident(layout.parent), ident(work)),
        sql.SQL("DROP TABLE {}").format(ident(work)),
        made[-1],  # ATTACH to the archive table
    ]
    return [Step(tuple(statements), lock_target=layout.parent)]
