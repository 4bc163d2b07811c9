"""What `lokifi-storage partitions compress` really saves on an archived month of messages.

    .venv/bin/python bench/partitions_compress.py --rows 1000000

One month of realistic messages (bench/messagegen.py: most turns well under 2 kB, about 8% of
assistant answers with code blocks over it) is made, indexed with the seed's thread index,
archived by the reconciler, then compressed by the job. Reported: the partition's size (heap +
TOAST + indexes) before and after, how many content values PostgreSQL stored compressed at all
(pglz before, lz4 after), the rewrite's time, and the time to read every content value back
(`sum(length(content))` forces decompression) before and after.

Why the saving is small for chat: PostgreSQL compresses a value only when its row exceeds
TOAST_TUPLE_THRESHOLD (about 2 kB, fixed at compile time), so short messages are stored as they
are whatever the column's compression method; lz4 changes how the long ones are compressed
(usually a little larger than pglz, and faster to decompress), and the rewrite drops dead space.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

import psycopg

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.partition_sql import copy_out_query
from lokifi_storage.clients.postgres import open_partition_database
from lokifi_storage.domain.partition_actions import CompressPartition
from lokifi_storage.domain.partition_catalog import QName
from lokifi_storage.jobs.compression import compressor
from lokifi_storage.jobs.partition_compress import compress_leaf
from lokifi_storage.jobs.partitions_cli import plans_for
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA, THREAD_INDEX, insert_params, insert_sql, load_pool
from pgbench_server import bench_server, with_database

MONTH = (dt.datetime(2024, 10, 1, tzinfo=dt.UTC), dt.datetime(2024, 11, 1, tzinfo=dt.UTC))
LEAF = "archive.ai_messages_p2024_10"


def spec(**extra: Any) -> TableSpec:
    return TableSpec.model_validate(
        {
            "name": "ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "premake": 1,
            "indexes": [THREAD_INDEX],
            **extra,
        }
    )


def measure(conn: psycopg.Connection[Any]) -> dict[str, float]:
    row = conn.execute(
        "SELECT pg_total_relation_size(%(t)s::regclass),"
        " count(*) FILTER (WHERE pg_column_compression(content) IS NOT NULL),"
        " count(*) FILTER (WHERE octet_length(content) > 2000), count(*)"
        " FROM " + LEAF,
        {"t": LEAF},
    ).fetchone()
    assert row is not None
    conn.execute("SELECT sum(length(content)) FROM " + LEAF).fetchone()  # warm the cache
    started = time.perf_counter()
    conn.execute("SELECT sum(length(content)) FROM " + LEAF).fetchone()
    read = time.perf_counter() - started
    return {
        "bytes": float(row[0]),
        "compressed": float(row[1]),
        "long": float(row[2]),
        "rows": float(row[3]),
        "read": read,
    }


def export_sizes(url: str) -> tuple[int, int]:
    """CSV bytes of the partition and what the export's zstd stream makes of them."""
    codec = compressor("zstd")
    raw = packed = 0
    with open_partition_database(url) as db:
        for chunk in db.copy_out(copy_out_query(QName(*LEAF.split(".")))):
            raw += len(chunk)
            packed += len(codec.compress(chunk))
    return raw, packed + len(codec.flush())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with bench_server() as server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_compress")
        url = with_database(server, "bench_compress")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        with open_partition_database(url) as db:
            reconcile_tables(db, [spec(premake=2)], MONTH[0] + dt.timedelta(days=3))
        with psycopg.connect(url, autocommit=True) as conn:
            size = load_pool(conn)
            conn.execute(insert_sql(), insert_params(*MONTH, args.rows, pool_size=size))
        now = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
        lifecycle = spec(archive={"afterDays": 365, "compressAfterDays": 400})
        with open_partition_database(url) as db:
            outcome = reconcile_tables(db, [lifecycle], now)
            assert not outcome.failures, outcome.failures
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            before = measure(conn)
        with open_partition_database(url) as db:
            (action,) = [
                a
                for p in plans_for(db, [lifecycle], now).values()
                for a in p.deferred
                if isinstance(a, CompressPartition) and str(a.leaf) == LEAF
            ]
            started = time.monotonic()
            result = compress_leaf(db, action)
            rewrite = time.monotonic() - started
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            after = measure(conn)
        csv_bytes, zstd_bytes = export_sizes(url)
    assert before["rows"] == after["rows"] == args.rows
    mib = 1024 * 1024
    print(f"rows {args.rows}; contents over 2000 bytes: {before['long']:.0f}")
    print(
        f"before (pglz, default): {before['bytes'] / mib:8.1f} MiB,"
        f" {before['compressed']:.0f} values compressed, full read {before['read']:.2f} s"
    )
    print(
        f"after  (lz4 rewrite):   {after['bytes'] / mib:8.1f} MiB,"
        f" {after['compressed']:.0f} values compressed, full read {after['read']:.2f} s"
    )
    print(
        f"rewrite took {rewrite:.1f} s (job reported {result.bytes_before} -> {result.bytes_after})"
    )
    print(f"size after/before: {after['bytes'] / before['bytes']:.3f}")
    print(f"read time after/before: {after['read'] / before['read']:.2f}")
    print(
        f"export of the same partition: CSV {csv_bytes / mib:.1f} MiB -> zstd"
        f" {zstd_bytes / mib:.1f} MiB ({csv_bytes / zstd_bytes:.1f}x smaller;"
        f" {after['bytes'] / zstd_bytes:.1f}x smaller than the table)"
    )


if __name__ == "__main__":
    main()
