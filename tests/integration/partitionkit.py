"""Shared pieces of the partition tests: the seed's message table, realistic rows, fingerprints
of the data and of the catalog. Everything here talks to the real PostgreSQL of the stack."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from stackfixtures import StackEnv

UTC = dt.UTC

# The partition tests' "now": mid-January 2026, so months seeded from late 2024 are past an
# archive.afterDays of 365 while the current month and those premade ahead are not.
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

MESSAGES_DDL = """
CREATE TABLE ai_messages (
    id bigserial NOT NULL,
    thread_id bigint NOT NULL,
    user_id bigint NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    tokens integer,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at)
"""

# Words of chat messages; contents are 20-320 of them, so some rows exceed the 2 kB at which
# PostgreSQL starts compressing and most do not, as in real chat logs.
_WORDS = " ".join(
    [
        "the model answered that partition pruning keeps old months out of the plan",
        "while users ask about invoices code reviews recipes travel plans and weather",
        "please summarise this thread in three bullet points with sources and a table",
    ]
).split(" ")

INSERT_MESSAGES = sql.SQL(
    """
INSERT INTO {table} (thread_id, user_id, role, content, tokens, metadata, created_at)
SELECT (g %% %(threads)s) + 1,
       (g * 7919) %% %(users)s,
       CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END,
       (SELECT string_agg(w[1 + (abs(hashint8(g * 31 + k)) %% array_length(w, 1))], ' ')
          FROM generate_series(1, 20 + abs(hashint8(g)) %% 300) AS k),
       20 + g %% 900,
       jsonb_build_object('model', 'lokifi-7b', 'latency_ms', g %% 1500, 'n', g),
       %(start)s::timestamptz
         + ((g - 1)::float8 / %(n)s) * (%(end)s::timestamptz - %(start)s::timestamptz)
  FROM generate_series(1, %(n)s) AS g, (SELECT %(words)s::text[] AS w) AS words
"""
)


def create_messages_table(url: str, *, with_default: bool = False) -> None:
    """The seed's message table, PARTITION BY RANGE (created_at), optionally with a DEFAULT
    partition so rows can be written before the operator made any partition."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(MESSAGES_DDL)
        if with_default:
            conn.execute("CREATE TABLE ai_messages_default PARTITION OF ai_messages DEFAULT")


def insert_messages(
    url: str,
    start: dt.datetime,
    end: dt.datetime,
    n: int,
    *,
    table: str = "ai_messages",
    users: int = 5000,
    threads: int = 20000,
) -> None:
    """`n` realistic messages with created_at spread evenly over [start, end)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            INSERT_MESSAGES.format(table=sql.Identifier(*table.split("."))),
            {
                "n": n,
                "start": start,
                "end": end,
                "users": users,
                "threads": threads,
                "words": _WORDS,
            },
        )


def query(url: str, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return list(conn.execute(text.encode() if params is None else text, params).fetchall())  # type: ignore[arg-type]


def execute(url: str, text: str) -> None:
    """A statement that returns no rows (VACUUM, DDL) in autocommit."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text.encode())


def fingerprint(url: str, *relations: str) -> tuple[int, str]:
    """(rows, md5 of every row in id order) over the union of `relations`."""
    union = " UNION ALL ".join(f"SELECT * FROM {r}" for r in relations)
    ((rows, digest),) = query(
        url,
        "SELECT count(*), md5(coalesce(string_agg(m::text, '|' ORDER BY id), ''))"
        f" FROM ({union}) m",
    )
    return int(rows), str(digest)


CATALOG_SNAPSHOT = """
SELECT 'class', c.oid::text, c.xmin::text, c.relfilenode::text, c.relname::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'index', indexrelid::text, xmin::text, indisvalid::text, '' FROM pg_index
 WHERE indexrelid >= 16384
UNION ALL
SELECT 'inherits', inhrelid::text, xmin::text, inhparent::text, '' FROM pg_inherits
UNION ALL
SELECT 'constraint', oid::text, xmin::text, convalidated::text, conname::text FROM pg_constraint
 WHERE oid >= 16384
UNION ALL
SELECT 'attribute', attrelid::text || '.' || attnum::text, xmin::text, attcompression::text, ''
  FROM pg_attribute WHERE attrelid >= 16384
ORDER BY 1, 2
"""


def catalog_snapshot(url: str) -> list[tuple[Any, ...]]:
    """Every row of the catalog that DDL would rewrite, with its xmin: equal snapshots mean no
    DDL ran in between (VACUUM and ANALYZE update pg_class in place and keep xmin)."""
    return query(url, CATALOG_SNAPSHOT)


def partitions_of(url: str, parent: str) -> list[tuple[str, str]]:
    """(partition, bound) of `parent`'s direct partitions, by name."""
    rows = query(
        url,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass ORDER BY 1",
        (parent,),
    )
    return [(str(a), str(b)) for a, b in rows]


def table_spec(**fields: Any) -> TableSpec:
    base: dict[str, Any] = {
        "name": "ai_messages",
        "partitionBy": {"column": "created_at", "interval": "month"},
        "premake": 2,
    }
    base.update(fields)
    return TableSpec.model_validate(base)


@contextmanager
def partition_db(url: str, **options: Any) -> Iterator[PartitionDatabase]:
    with open_partition_database(url, **options) as db:
        yield db


def month_start(year: int, month: int) -> dt.datetime:
    return dt.datetime(year, month, 1, tzinfo=UTC)


def jobs_env(url: str, spec: TableSpec, stack: StackEnv | None = None) -> dict[str, str]:
    """The environment the operator gives its partitions Jobs: the primary's URL and the table,
    and with `stack` the S3 endpoint and keys an export needs."""
    env = {
        "LOKIFI_PRIMARY_URL": str(url),
        "LOKIFI_TABLES_JSON": json.dumps([spec.model_dump(by_alias=True, exclude_none=True)]),
    }
    if stack is not None:
        env |= {
            "LOKIFI_S3_ENDPOINT": stack.s3_endpoint,
            "AWS_ACCESS_KEY_ID": stack.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": stack.aws_secret_access_key,
            "AWS_DEFAULT_REGION": stack.aws_region,
        }
    return env
