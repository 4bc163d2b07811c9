"""The partition client's two catalog statements planned per execution (PostgreSQL's custom
plans, as the client sent them before) and with one generic plan per connection (as it sends
them now), side by side, looking at many tables in turn as new resources' first passes do.

    .venv/bin/python bench/catalog_plans.py                 # 300 schemas
    .venv/bin/python bench/catalog_plans.py --schemas 1000

One database holds N schemas, each with the application's partitioned `ai_messages` (DEFAULT, 9
monthly partitions and a parent index), as bench/catalog_jit.py builds it. On one session with
`jit = off` each round observes every table once, the first round as a first look (nothing
prepared for that table yet), then again:
- before: the catalog query with its request as parameters, unprepared until psycopg's fifth
  execution and then prepared with PostgreSQL's default `plan_cache_mode = auto` (custom plans:
  planned at each execution); the fingerprint with its request written in as literals and
  prepared, so once per table;
- now: both statements prepared with the request as parameters, `plan_cache_mode =
  force_generic_plan`: one plan per connection for every table.
Printed: the median time per statement of each round, and EXPLAIN ANALYZE's planning and
execution times of the catalog query for one table under each mode.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from catalog_jit import build
from lokifi_storage.api.spec import TableSpec
from lokifi_storage.domain.partitions.catalog_query import (
    CATALOG_QUERY,
    FINGERPRINT_QUERY,
    request_for,
)
from operator_common import create_database, drop_database, stack, token

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def literal_fingerprint(params: dict[str, Any]) -> sql.Composed:
    """The fingerprint as the client sent it before: the request written in as literals."""
    text = FINGERPRINT_QUERY.as_string(None)
    parts: list[sql.Composable] = []
    at = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(sql.SQL(text[at : match.start()]))
        parts.append(sql.Literal(params[match.group(1)]))
        at = match.end()
    parts.append(sql.SQL(text[at:]))
    return sql.Composed(parts)


def spec(i: int) -> TableSpec:
    return TableSpec.model_validate(
        {
            "name": f"s_{i:04d}.ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "premake": 3,
        }
    )


def rounds(url: str, schemas: int, mode: str, count: int) -> dict[str, list[float]]:
    """Seconds per statement of each round, over every table, on one fresh session."""
    out: dict[str, list[float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET jit = off")
        if mode == "generic":
            conn.execute("SET plan_cache_mode = force_generic_plan")
        for r in range(count):
            catalog: list[float] = []
            fingerprint: list[float] = []
            for i in range(schemas):
                params = request_for([spec(i)]).params()
                started = time.perf_counter()
                if mode == "generic":
                    conn.execute(FINGERPRINT_QUERY, params, prepare=True).fetchall()
                else:
                    text = literal_fingerprint(params).as_string(conn)
                    conn.execute(text, prepare=True).fetchall()
                fingerprint.append(time.perf_counter() - started)
                started = time.perf_counter()
                conn.execute(CATALOG_QUERY, params, prepare=True if mode == "generic" else None)
                catalog.append(time.perf_counter() - started)
            out[f"fingerprint, round {r + 1}"] = fingerprint
            out[f"catalog, round {r + 1}"] = catalog
    return out


def explained(url: str, schemas: int, mode: str) -> tuple[float, float]:
    """Planning and execution ms of the catalog query for one table, by EXPLAIN ANALYZE."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET jit = off")
        if mode == "generic":
            conn.execute("SET plan_cache_mode = force_generic_plan")
        params = request_for([spec(schemas // 2)]).params()
        query = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + CATALOG_QUERY
        conn.execute(query, params).fetchall()  # warm the catalog caches
        (plan,) = conn.execute(query, params).fetchone() or ([{}],)
    return float(plan[0]["Planning Time"]), float(plan[0]["Execution Time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    env = stack()
    dbname = f"bench_plans_{token()}"
    database = create_database(env, dbname)
    try:
        started = time.monotonic()
        build(database.primary_url, args.schemas)
        built = time.monotonic() - started
        results = {
            mode: rounds(database.primary_url, args.schemas, mode, args.rounds)
            for mode in ("custom", "generic")
        }
        plans = {mode: explained(database.primary_url, args.schemas, mode) for mode in results}
    finally:
        drop_database(env, dbname)

    print(f"catalog statements over {args.schemas} tables in turn (built in {built:.0f}s)")
    print(f"  machine load average {os.getloadavg()[0]:.1f} (1 min, at the end)")
    print(f"  {'median per statement':26s} {'before':>9s} {'now':>9s} {'ratio':>7s}")
    for what in results["custom"]:
        before = statistics.median(results["custom"][what]) * 1000
        now = statistics.median(results["generic"][what]) * 1000
        print(f"  {what:26s} {before:7.2f}ms {now:7.2f}ms {before / now:6.1f}x")
    for mode, (planning, execution) in plans.items():
        print(
            f"  catalog query, EXPLAIN ({mode + ' plan'}): planning {planning:.2f} ms,"
            f" execution {execution:.2f} ms"
        )


if __name__ == "__main__":
    main()
