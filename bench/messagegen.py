"""Realistic chat messages, generated fast enough for millions of rows.

Texts come from a pool of a few thousand messages built once in Python from a Zipf-weighted
vocabulary: user turns of 4-60 words, assistant turns of 30-700 words (a few long answers with
code pass PostgreSQL's ~2 kB compression threshold, most do not). Each row picks one by a hash
of its number and prefixes its own number, so rows differ and content compresses like real
text, not like a repeated constant. Users, threads and times follow the seed's schema.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

# The seed's table and the example's two indexes come from the partition tests' kit, so the
# benchmarks measure the very table the integration tests prove correct.
from partitionkit import MESSAGES_DDL

from example_indexes import SEARCH_INDEX, THREAD_INDEX

__all__ = [
    "POOL_TABLE",
    "SCHEMA",
    "SEARCH_INDEX",
    "THREAD_INDEX",
    "insert_params",
    "insert_sql",
    "load_pool",
    "text_pool",
]

SCHEMA = MESSAGES_DDL

_VOCABULARY = " ".join(
    [
        "the a to of and in is it you that for on with this be are as can i your what how "
        "model data query table index partition user thread message answer question code python "
        "function error result time date month year please thanks help explain example list "
        "summary step first second then because when where which should would could will not "
        "database postgres redis cache latency request response token prompt context memory "
        "server client deploy kubernetes pod node cluster backup restore archive export storage "
        "invoice recipe travel weather meeting schedule email draft review fix bug test build",
    ]
).split(" ")


def text_pool(size: int = 4000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(_VOCABULARY))]
    pool = []
    for i in range(size):
        assistant = i % 2 == 1
        words = (
            int(rng.lognormvariate(5.0, 0.8)) if assistant else int(rng.lognormvariate(2.6, 0.7))
        )
        words = max(4, min(words, 700 if assistant else 60))
        text = " ".join(rng.choices(_VOCABULARY, weights, k=words))
        if assistant and rng.random() < 0.08:
            text += (
                "\n```python\n"
                + "\n".join(
                    f"def step_{n}(row):\n    return row['{rng.choice(_VOCABULARY)}'] * {n}"
                    for n in range(rng.randint(5, 40))
                )
                + "\n```"
            )
        pool.append(text)
    return pool


POOL_TABLE = "bench_texts"

INSERT = """
INSERT INTO {table} (thread_id, user_id, role, content, tokens, metadata, created_at)
SELECT t.thread_id, t.thread_id %% %(users)s,
       CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END,
       g::text || ': ' || p.body,
       10 + g %% 900,
       jsonb_build_object('model', 'lokifi-7b', 'latency_ms', g %% 1500),
       %(start)s::timestamptz
         + ((g - %(first)s)::float8 / %(n)s) * (%(end)s::timestamptz - %(start)s::timestamptz)
FROM generate_series(%(first)s, %(first)s + %(n)s - 1) AS g
CROSS JOIN LATERAL (SELECT 1 + (abs(hashint8(g / 8)) %% %(threads)s) AS thread_id) AS t
JOIN {pool} AS p ON p.i = (g * 2 + g %% 2) %% %(pool_size)s
"""


def load_pool(conn: object, pool: list[str] | None = None) -> int:
    """Create the text pool table (a join is far cheaper than indexing a large array)."""
    texts = pool or text_pool()
    execute = conn.execute  # type: ignore[attr-defined]
    execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(POOL_TABLE)))
    execute(
        sql.SQL("CREATE TABLE {} (i int PRIMARY KEY, body text NOT NULL)").format(
            sql.Identifier(POOL_TABLE)
        )
    )
    cur = conn.cursor()  # type: ignore[attr-defined]
    with cur.copy(
        sql.SQL("COPY {} (i, body) FROM STDIN").format(sql.Identifier(POOL_TABLE))
    ) as copy:
        for i, text in enumerate(texts):
            copy.write_row((i, text))
    execute(sql.SQL("ANALYZE {}").format(sql.Identifier(POOL_TABLE)))
    return len(texts)


def insert_sql(table: str = "ai_messages") -> sql.Composed:
    return sql.SQL(INSERT).format(
        table=sql.Identifier(*table.split(".")), pool=sql.Identifier(POOL_TABLE)
    )


def insert_params(
    start: dt.datetime,
    end: dt.datetime,
    n: int,
    *,
    pool_size: int,
    first: int = 1,
    users: int = 50_000,
    threads: int = 400_000,
) -> dict[str, object]:
    """Rows `first`..`first+n-1`, spread evenly over [start, end); eight per thread in a row."""
    return {
        "n": n,
        "first": first,
        "start": start,
        "end": end,
        "users": users,
        "threads": threads,
        "pool_size": pool_size,
    }
