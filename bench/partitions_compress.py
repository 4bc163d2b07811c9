"""What packing an archived month saves, and what reading it costs, side by side.

    .venv/bin/python bench/partitions_compress.py --rows 1000000

One month of realistic messages (bench/messagegen.py: the corpus of the earlier lz4-rewrite
measurement: most turns well under 2 kB, about 8% of assistant answers with code over it,
eight messages per thread in a row) is made on a private server, indexed with the seed's
thread index and archived by the reconciler. Then, on the same month:

  plain       the archived partition as it is (heap + TOAST + index)
  packed      by `partitions compress` (segmentBy user_id, thread_id) with packRows 1 (each
              thread alone), 64, 256 and 512 with pglz, and 512 with lz4; each unpacked again
              (timed) before the next
  zstd export the month's CSV through the export's zstd stream (level 3)

For each form: its size, a full read of every column through the view (`sum(length(t::text))`
over `archive.ai_messages_rows` vs the plain archive table), and one thread's history (p50 and
p95 of 300 sampled threads, each warmed once: `SELECT * ... WHERE user_id = $1 AND thread_id =
$2 ORDER BY created_at` on the plain month, `archive.ai_messages_group($1, $2)` on the packed
one). Pack and unpack are timed. With the local stack's S3 server up (stack.env), the export
of the packed month runs for real, and the statements that read the partition are counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.clients.postgres.partitions import PartitionDatabase, open_partition_database
from lokifi_storage.domain.partitions.actions import ExportPartition
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.partitions.catalog_query import request_for
from lokifi_storage.domain.partitions.pack import PackPartition, plan_unpack
from lokifi_storage.domain.partitions.statements import copy_out_query
from lokifi_storage.jobs.compression import compressor
from lokifi_storage.jobs.partition_compress import pack_month, unpack_month
from lokifi_storage.jobs.partitions_args import plans_for
from lokifi_storage.reconcile.partitions import reconcile_tables
from messagegen import SCHEMA, THREAD_INDEX, insert_params, insert_sql, load_pool
from pgbench_server import bench_server, with_database

MONTH = (dt.datetime(2024, 10, 1, tzinfo=dt.UTC), dt.datetime(2024, 11, 1, tzinfo=dt.UTC))
LEAF = QName("archive", "ai_messages_p2024_10")
NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
EXPORT_NOW = dt.datetime(2032, 1, 15, tzinfo=dt.UTC)
SAMPLES = 300
# (label, archive fields): one group per stored row (the segment-only design), then whole
# groups side by side up to 64, 256 and 512 rows, pglz; and 512 with lz4.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("packRows 1, pglz", {"packRows": 1}),
    ("packRows 64, pglz", {"packRows": 64}),
    ("packRows 256, pglz", {"packRows": 256}),
    ("packRows 512, pglz", {"packRows": 512}),
    ("packRows 512, lz4", {"packRows": 512, "packCompression": "lz4"}),
)


def spec(archive: dict[str, Any] | None = None, **extra: Any) -> TableSpec:
    return TableSpec.model_validate(
        {
            "name": "ai_messages",
            "partitionBy": {"column": "created_at", "interval": "month"},
            "premake": 1,
            "indexes": [THREAD_INDEX],
            **({"archive": archive} if archive else {}),
            **extra,
        }
    )


def archive(**fields: Any) -> dict[str, Any]:
    return {"afterDays": 365, "compressAfterDays": 400, **fields}


def size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
        " FROM pg_partition_tree('archive.ai_messages_p2024_10')"
    ).fetchone()
    assert row is not None
    return int(row[0])


def full_read(conn: psycopg.Connection[Any], relation: str) -> float:
    """Seconds to read every column of every row (the text of each row forces detoasting)."""
    query = f"SELECT count(*), sum(length(t::text)) FROM {relation} t"
    conn.execute(query).fetchone()  # warm the cache
    started = time.perf_counter()
    conn.execute(query).fetchone()
    return time.perf_counter() - started


def lookups(
    conn: psycopg.Connection[Any], query: str, threads: list[tuple[int, int]]
) -> list[float]:
    """Milliseconds per thread history, each thread warmed once first."""
    out = []
    for user, thread in threads:
        conn.execute(query, (user, thread), prepare=True).fetchall()
        started = time.perf_counter()
        rows = conn.execute(query, (user, thread), prepare=True).fetchall()
        out.append((time.perf_counter() - started) * 1000)
        assert rows
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def export_sizes(url: str) -> tuple[int, int]:
    """CSV bytes of the plain month and what the export's zstd stream makes of them."""
    codec = compressor("zstd")
    raw = packed = 0
    with open_partition_database(url) as db:
        for chunk in db.copy_out(copy_out_query(LEAF)):
            raw += len(chunk)
            packed += len(codec.compress(chunk))
    return raw, packed + len(codec.flush())


def pack(url: str, table: TableSpec) -> float:
    with open_partition_database(url, lock_timeout_ms=60_000) as db:
        (action,) = [
            a
            for p in plans_for(db, [table], NOW).values()
            for a in p.deferred
            if isinstance(a, PackPartition) and a.month == LEAF
        ]
        started = time.monotonic()
        pack_month(db, action)
        return time.monotonic() - started


def unpack(url: str, table: TableSpec) -> float:
    with open_partition_database(url, lock_timeout_ms=60_000) as db:
        action = plan_unpack(table, db.observe(request_for([table]))[table.name], LEAF.name)
        started = time.monotonic()
        unpack_month(db, action)
        return time.monotonic() - started


def measure(
    url: str, relation: str, query: str, threads: list[tuple[int, int]]
) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        times = lookups(conn, query, threads)
        return {
            "bytes": float(size(conn)),
            "read": full_read(conn, relation),
            "p50": pct(times, 50),
            "p95": pct(times, 95),
        }


def read_stack_env() -> dict[str, str]:
    configured = os.environ.get("LOKIFI_STACK_STATE")
    root = Path(configured) if configured else Path.home() / ".local/state/lokifi-stack"
    env_file = root / "stack.env"
    if not env_file.exists():
        return {}
    out = {}
    for line in env_file.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip().strip("'\"")
    return out


def export_packed(url: str, table: TableSpec) -> tuple[float, int, int] | None:
    """(seconds, statements reading the partition, rows) of a real export of the packed month
    to the stack's S3 server, or None without one."""
    env = read_stack_env()
    if not env.get("LOKIFI_S3_ENDPOINT"):
        return None
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ.setdefault(key, env.get(key, ""))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
    from lokifi_storage.clients.s3 import make_client
    from lokifi_storage.clients.s3_export import ExportStore
    from lokifi_storage.jobs.partition_export import export_and_drop

    bucket = f"bench-pack-{os.getpid()}"
    client = make_client(env["LOKIFI_S3_ENDPOINT"], env.get("AWS_DEFAULT_REGION"), None, None)
    client.create_bucket(Bucket=bucket)
    expiring = spec(
        archive(),
        retention={
            "dropAfterDays": 2000,
            "exportTo": {"bucket": bucket, "storageClass": "STANDARD"},
        },
    )
    try:
        with open_partition_database(url) as db:
            (action,) = [
                a
                for p in plans_for(db, [expiring], EXPORT_NOW).values()
                for a in p.deferred
                if isinstance(a, ExportPartition) and a.partition == LEAF
            ]
            started = time.monotonic()
            result = export_and_drop(db, ExportStore(client, bucket), action)
            seconds = time.monotonic() - started
            reads = _reads(db, LEAF)
            return seconds, reads, result.rows
    finally:
        for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def _reads(db: PartitionDatabase, relation: QName) -> int:
    """Statements that scanned the partition: COPY out of it or a count of it."""
    name = f'"{relation.schema}"."{relation.name}"'
    return sum(
        1
        for s in db.statements
        if name in s and (s.startswith("COPY") or s.startswith("SELECT count(*)"))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    stats: dict[str, tuple[float, ...]] = {}
    plain_q = (
        "SELECT * FROM archive.ai_messages WHERE user_id = %s AND thread_id = %s"
        " ORDER BY created_at"
    )
    packed_q = "SELECT * FROM archive.ai_messages_group(%s, %s)"
    with bench_server() as server:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_compress")
        url = with_database(server, "bench_compress")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        with open_partition_database(url) as db:
            reconcile_tables(db, [spec(premake=2)], MONTH[0] + dt.timedelta(days=3))
        with psycopg.connect(url, autocommit=True) as conn:
            pool = load_pool(conn)
            conn.execute(insert_sql(), insert_params(*MONTH, args.rows, pool_size=pool))
        with open_partition_database(url) as db:
            outcome = reconcile_tables(db, [spec(archive(), premake=2)], NOW)
            assert not outcome.failures, outcome.failures
        with psycopg.connect(url, autocommit=True) as conn:
            pairs = conn.execute(
                "SELECT user_id, thread_id FROM archive.ai_messages GROUP BY 1, 2"
            ).fetchall()
            groups = len(pairs)
        threads = random.Random(7).sample([(int(u), int(t)) for u, t in pairs], SAMPLES)
        results["plain"] = measure(url, "archive.ai_messages", plain_q, threads)
        csv_bytes, zstd_bytes = export_sizes(url)

        for label, fields in VARIANTS:
            table = spec(archive(**fields))
            timings[f"pack {label}"] = pack(url, table)
            results[label] = measure(url, "archive.ai_messages_rows", packed_q, threads)
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*),"
                    " count(*) FILTER (WHERE pg_column_compression(content) IS NULL),"
                    " sum(pg_column_size(content)), (SELECT sum(octet_length(c))"
                    "   FROM archive.ai_messages_p2024_10 p2, unnest(p2.content) c)"
                    " FROM archive.ai_messages_p2024_10"
                ).fetchone()
            assert row is not None
            stats[label] = tuple(float(x) for x in row)
            timings[f"unpack {label}"] = unpack(url, table)
        results["plain again"] = measure(url, "archive.ai_messages", plain_q, threads)
        pack(url, spec(archive()))
        exported = export_packed(url, spec(archive()))

    mib = 1024 * 1024
    plain = results["plain"]["bytes"]
    print(f"rows {args.rows}; groups (user_id, thread_id) {groups}")
    print(
        "| form | size | vs plain | stored rows | content stored | full read |"
        " thread p50 | thread p95 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in ("plain", *(v for v, _ in VARIANTS), "plain again"):
        r = results[label]
        extra = "| | "
        if label in stats:
            count, _, content_stored, content_raw = stats[label]
            extra = f"| {count:.0f} | {content_raw / content_stored:.2f}x "
        print(
            f"| {label} | {r['bytes'] / mib:.1f} MiB | {plain / r['bytes']:.2f}x {extra}|"
            f" {r['read']:.2f} s | {r['p50']:.2f} ms | {r['p95']:.2f} ms |"
        )
    print(f"| zstd export | {zstd_bytes / mib:.1f} MiB | {plain / zstd_bytes:.2f}x | | | | | |")
    print(f"CSV of the month: {csv_bytes / mib:.1f} MiB")
    for label, (count, uncompressed, _, _) in stats.items():
        print(f"{label}: {uncompressed:.0f} of {count:.0f} stored rows with content uncompressed")
    for label, seconds in timings.items():
        print(f"{label}: {seconds:.1f} s")
    if exported is None:
        print("export: no stack.env S3 endpoint, not measured")
    else:
        seconds, reads, rows = exported
        print(f"export of the packed month: {rows} rows in {seconds:.1f} s, {reads} reads of it")


if __name__ == "__main__":
    main()
