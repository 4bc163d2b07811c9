"""The partition client's catalog queries with PostgreSQL's JIT on (the server default, and the
operator's sessions before they turned it off) and off, side by side.

    .venv/bin/python bench/catalog_jit.py                 # 1,000 schemas, as operator_scale
    .venv/bin/python bench/catalog_jit.py --schemas 200

One database holds N schemas, each with the application's partitioned `ai_messages` (DEFAULT, 9
monthly partitions and a parent index): the catalog of bench/operator_scale.py after its first
pass. For one managed table, the fingerprint and the catalog query of one observation are timed
--repeat times on a partition-client session (clients/postgres/partitions.py), once with
`jit = off` as that session now sets it and once with `jit = on`; then one EXPLAIN ANALYZE of
each says how much of the time went to compiling. The planner guesses thousands of relations
for the recursive walk of a table of a dozen, so both queries cost more than `jit_above_cost`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.partitions import open_partition_database
from lokifi_storage.domain.partitions.catalog_query import (
    CATALOG_QUERY,
    FINGERPRINT_QUERY,
    request_for,
)
from operator_common import create_database, drop_database, stack, token

TABLE = """
CREATE SCHEMA {schema};
CREATE TABLE {schema}.ai_messages (
    id bigint GENERATED ALWAYS AS IDENTITY,
    user_id bigint NOT NULL,
    thread_id bigint NOT NULL,
    content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at);
CREATE INDEX {index} ON ONLY {schema}.ai_messages (user_id, created_at DESC);
CREATE TABLE {schema}.ai_messages_default PARTITION OF {schema}.ai_messages DEFAULT;
"""

MONTH = "CREATE TABLE {part} PARTITION OF {parent} FOR VALUES FROM ({start}) TO ({end})"


def build(url: str, schemas: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(schemas):
            schema = sql.Identifier(f"s_{i:04d}")
            conn.execute(
                sql.SQL(TABLE).format(schema=schema, index=sql.Identifier(f"idx_s_{i:04d}"))
            )
            for m in range(9):
                year, month = divmod(2026 * 12 + 7 + m, 12)
                after_year, after_month = divmod(2026 * 12 + 8 + m, 12)
                conn.execute(
                    sql.SQL(MONTH).format(
                        part=sql.Identifier(f"s_{i:04d}", f"ai_messages_p{year}_{month + 1:02d}"),
                        parent=sql.Identifier(f"s_{i:04d}", "ai_messages"),
                        start=sql.Literal(f"{year}-{month + 1:02d}-01"),
                        end=sql.Literal(f"{after_year}-{after_month + 1:02d}-01"),
                    )
                )


def timed(conn: Any, query: sql.SQL, params: dict[str, Any], repeat: int) -> list[float]:
    conn.execute(query, params).fetchall()  # warm-up (catalog caches of the backend)
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        seconds.append(time.perf_counter() - started)
    return seconds


def jit_ms(conn: Any, query: sql.SQL, params: dict[str, Any]) -> tuple[float, float]:
    """(execution, of which JIT) in ms, from one EXPLAIN ANALYZE."""
    row = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + query.as_bytes(conn), params).fetchone()
    plan = row[0][0]
    return float(plan["Execution Time"]), float(
        plan.get("JIT", {}).get("Timing", {}).get("Total", 0)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    env = stack()
    dbname = f"bench_jit_{token()}"
    database = create_database(env, dbname)
    try:
        started = time.monotonic()
        build(database.primary_url, args.schemas)
        built = time.monotonic() - started
        spec = TableSpec.model_validate(
            {
                "name": f"s_{args.schemas // 2:04d}.ai_messages",
                "partitionBy": {"column": "created_at", "interval": "month"},
                "premake": 3,
            }
        )
        params = request_for([spec]).params()
        results: dict[tuple[str, str], list[float]] = {}
        explained: dict[tuple[str, str], tuple[float, float]] = {}
        with open_partition_database(database.primary_url) as db:
            for jit in ("off", "on"):
                db.conn.execute(sql.SQL("SET jit = {}").format(sql.SQL(jit)))
                for name, query in (("fingerprint", FINGERPRINT_QUERY), ("catalog", CATALOG_QUERY)):
                    results[(name, jit)] = timed(db.conn, query, params, args.repeat)
                    explained[(name, jit)] = jit_ms(db.conn, query, params)
    finally:
        drop_database(env, dbname)

    print(f"catalog queries of one managed table among {args.schemas} (built in {built:.0f}s)")
    print(f"  machine load average {os.getloadavg()[0]:.1f} (1 min, at the end)")
    print(f"  {'':12s} {'jit off':>10s} {'jit on':>10s} {'ratio':>7s}   EXPLAIN ANALYZE (on)")
    for name in ("fingerprint", "catalog"):
        off = statistics.median(results[(name, "off")]) * 1000
        on = statistics.median(results[(name, "on")]) * 1000
        total, compiling = explained[(name, "on")]
        print(
            f"  {name:12s} {off:8.1f}ms {on:8.1f}ms {on / off:6.1f}x"
            f"   {total:.1f} ms, of which JIT {compiling:.1f} ms"
        )


if __name__ == "__main__":
    main()
