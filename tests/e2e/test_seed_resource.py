"""The seed's resource end to end: examples/lokifistorage-full.yaml (user-range sub-partitions
with archive, compress and export; the partial index on ai_threads) reconciled by the operator
on the local stack, then everything it declares read back from the servers.

Old rows are written before the first reconcile can place them (into the DEFAULT partition the
operator creates), so the operator also creates their months, archives the year-old ones
into the archive schema and reports the compress and export work. Then, from pg_indexes, every
leaf partition of ai_messages (live and archived, range and DEFAULT, every user range) carries
the B-tree on user/thread/time and the GIN full-text index, and ai_threads the partial index
WHERE NOT is_archived; the time partitions, user ranges, archive schema, CronJobs and the
connection Secret match the spec.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import psycopg
import yaml
from e2e_full import FullExample, expected_months
from e2e_operator import OperatorFactory, conditions, get_json, kubectl, render
from e2e_seed import apply_seed, insert_old_rows, wait_old_rows_settled

from stackfixtures import REPO

BTREE = re.compile(r"USING btree \(user_id, thread_id, created_at DESC\)$")
GIN = re.compile(r"USING gin \(to_tsvector\('english'::regconfig, content\)\)$")
PARTIAL = re.compile(
    r"USING btree \(user_id, updated_at\) WHERE \((NOT is_archived|is_archived = false)\)$"
)


def test_the_fixture_is_the_example_pointed_at_the_stack() -> None:
    example = yaml.safe_load((REPO / "examples" / "lokifistorage-full.yaml").read_text())
    values = {
        "namespace": "lokifi",
        "dry_run": "false",
        "conn_secret": "lokifi-db-conn",
        "premake": 3,
        "archive_bucket": "lokifi-archive",
        "media_bucket": "lokifi-media",
        "backup_bucket": "lokifi-backups",
        "maxmemory": "2gb",
        "daily_schedule": "0 2 * * *",
        "abort_days": 7,
        "redis_extra": "",
        "s3_endpoint": "https://s3.eu-west-1.amazonaws.com",
        "region": "eu-west-1",
    }
    fixture = yaml.safe_load(render("seed", "lokifistorage.yaml", **values))
    assert fixture["spec"].pop("dryRun") is False
    # Only where the servers are differs: the stack's Redis seeds instead of the example's, and
    # its S3 server on loopback is plain HTTP.
    assert [n["port"] for n in fixture["spec"]["redis"].pop("nodes")] == [7000, 7001, 7002]
    assert fixture["spec"]["objectStorage"].pop("allowPlainHttp") is True
    example["spec"]["redis"].pop("nodes")
    assert fixture == example


def _rows(conn: psycopg.Connection[Any], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def test_seed_resource_end_to_end(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns, url = full_example.stack, full_example.namespace, full_example.database.primary_url
    full_example.create_secrets()
    apply_seed(full_example)
    start_operator(ns, resync_seconds=3)
    kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/lokifi-prod", "--timeout=180s")

    insert_old_rows(full_example)
    body = wait_old_rows_settled(full_example)
    (status,) = [p for p in body["status"]["partitions"] if p["table"] == "ai_messages"]
    assert status["pendingCompress"] == 1
    partitions_ready = conditions(body)["PartitionsReady"]
    assert partitions_ready["reason"] == "MaintenancePending", partitions_ready

    with psycopg.connect(url) as conn:
        leaves = [
            row[0]
            for root in ("public.ai_messages", "archive.ai_messages")
            for row in _rows(
                conn,
                "SELECT relid::regclass::text FROM pg_partition_tree(%s::regclass) WHERE isleaf",
                root,
            )
        ]
        indexes: dict[str, list[str]] = {}
        for schema, table, definition in _rows(
            conn, "SELECT schemaname, tablename, indexdef FROM pg_indexes"
        ):
            key = table if schema == "public" else f"{schema}.{table}"
            indexes.setdefault(key, []).append(definition)
        # Every leaf: live months and their user ranges, DEFAULTs, and the archived months.
        assert len(leaves) >= 3 * 4 + 2 * 3, leaves
        assert any(leaf.startswith("archive.") for leaf in leaves)
        for leaf in leaves:
            defs = indexes.get(leaf, [])
            assert sum(bool(BTREE.search(d)) for d in defs) == 1, (leaf, defs)
            assert sum(bool(GIN.search(d)) for d in defs) == 1, (leaf, defs)
        assert sum(bool(PARTIAL.search(d)) for d in indexes["ai_threads"]) == 1, indexes[
            "ai_threads"
        ]

        # Time partitions: this month and three ahead, each split in the declared user ranges.
        months = {
            name
            for (name,) in _rows(
                conn,
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'public.ai_messages'::regclass",
            )
        }
        assert expected_months(3) <= months
        for month in expected_months(3):
            bounds = dict(
                _rows(
                    conn,
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                    " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                    month,
                )
            )
            assert bounds == {
                f"{month}_s0": "FOR VALUES FROM ('0') TO ('1000000')",
                f"{month}_s1": "FOR VALUES FROM ('1000000') TO ('2000000')",
                f"{month}_sdefault": "DEFAULT",
            }
        # The archive schema holds the archived months, partitioned like the table.
        ((strategy,),) = _rows(
            conn,
            "SELECT pg_get_partkeydef('archive.ai_messages'::regclass)",
        )
        assert strategy == "RANGE (created_at)"
        ((archived_rows,),) = _rows(conn, "SELECT count(*) FROM archive.ai_messages")
        assert archived_rows == 6
        ((total,),) = _rows(conn, "SELECT count(*) FROM ai_messages")
        assert total == 3, "rows past retention stay until the export Job moves them to S3"

    cronjobs = {
        c["metadata"]["name"]: c for c in (get_json(stack, ns, "cronjobs") or {}).get("items", [])
    }
    assert {name: c["spec"]["schedule"] for name, c in cronjobs.items()} == {
        "lokifi-prod-backup-daily": "0 2 * * *",
        "lokifi-prod-backup-weekly": "0 3 * * 0",
        "lokifi-prod-backup-monthly": "0 4 1 * *",
        "lokifi-prod-vacuum": "0 5 * * 0",
        "lokifi-prod-partitions-compress": "30 1 * * *",
        "lokifi-prod-partitions-export": "30 1 * * *",
    }
    export = cronjobs["lokifi-prod-partitions-export"]["spec"]["jobTemplate"]["spec"]
    container = export["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["partitions", "export"]
    tables_json = next(e["value"] for e in container["env"] if e["name"] == "LOKIFI_TABLES_JSON")
    assert full_example.buckets["archive"] in tables_json
    assert '"subpartitionBy"' in tables_json

    secret = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert data["DATABASE_URL"].endswith(full_example.database.primary_url.split("@", 1)[1])
    assert data["DATABASE_POOL_SIZE"] == "20"
    assert data["DATABASE_MAX_OVERFLOW"] == "30"
    assert data["REDIS_CLUSTER_NODES"] == "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
    assert data["REDIS_CONTEXT_TTL_SECONDS"] == "3600"
    media = full_example.buckets["media"]
    assert data["S3_BUCKET_" + re.sub(r"[^A-Z0-9]", "_", media.upper())] == media
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == (
        "LokifiStorage",
        "lokifi-prod",
        True,
    )
