"""The connection Secret's data: keys of the seed's .env.production, stable between passes."""

from __future__ import annotations

import pytest

from lokifi_storage.api.spec import PoolSpec, RedisNodeSpec
from lokifi_storage.domain.connection_secret import (
    SecretKeyCollisionError,
    bucket_entries,
    bucket_secret_key,
    build_connection_secret_data,
    database_entries,
    redis_entries,
    with_driver,
)

PRIMARY = "postgresql://app:p%40ss:w/rd@db:5432/lokifi?sslmode=require"
REPLICA_1 = "postgres://app:pw@replica-1:5432/lokifi"
REPLICA_2 = "postgresql://app:pw@replica-2:5432/lokifi"


def test_the_driver_replaces_only_the_scheme_and_keeps_the_rest_byte_for_byte() -> None:
    assert (
        with_driver(PRIMARY, "postgresql+asyncpg")
        == "postgresql+asyncpg://app:p%40ss:w/rd@db:5432/lokifi?sslmode=require"
    )
    assert with_driver("postgresql+psycopg://u@h/d", "postgresql") == "postgresql://u@h/d"


def test_a_url_without_a_scheme_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="no scheme") as caught:
        with_driver("app:secret@db/lokifi", "postgresql")
    assert "secret" not in str(caught.value)


def test_the_first_healthy_replica_in_spec_order_is_the_replica_url() -> None:
    data = database_entries(PRIMARY, [REPLICA_1, REPLICA_2], PoolSpec(), "postgresql+asyncpg")
    assert data["DATABASE_REPLICA_URL"] == "postgresql+asyncpg://app:pw@replica-1:5432/lokifi"
    assert data["DATABASE_REPLICA_URLS"] == (
        "postgresql+asyncpg://app:pw@replica-1:5432/lokifi,"
        "postgresql+asyncpg://app:pw@replica-2:5432/lokifi"
    )


def test_with_no_healthy_replica_reads_go_to_the_primary() -> None:
    data = database_entries(PRIMARY, [], PoolSpec(), "postgresql")
    assert data["DATABASE_REPLICA_URL"] == data["DATABASE_URL"] == PRIMARY
    assert data["DATABASE_REPLICA_URLS"] == PRIMARY


def test_pool_settings_are_written_as_the_seed_named_them() -> None:
    pool = PoolSpec(size=20, maxOverflow=30, timeoutSeconds=31, recycleSeconds=3600)
    data = database_entries(PRIMARY, [], pool, "postgresql")
    assert {k: v for k, v in data.items() if k.startswith("DATABASE_POOL") or "OVERFLOW" in k} == {
        "DATABASE_POOL_SIZE": "20",
        "DATABASE_MAX_OVERFLOW": "30",
        "DATABASE_POOL_TIMEOUT": "31",
        "DATABASE_POOL_RECYCLE": "3600",
    }


def test_redis_entries_list_the_seed_nodes_and_the_context_ttl() -> None:
    nodes = [RedisNodeSpec(host="redis-0.redis", port=7000), RedisNodeSpec(host="redis-1.redis")]
    assert redis_entries(nodes, 3600) == {
        "REDIS_CLUSTER_NODES": "redis-0.redis:7000,redis-1.redis:6379",
        "REDIS_CONTEXT_TTL_SECONDS": "3600",
    }


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("lokifi-media", "S3_BUCKET_LOKIFI_MEDIA"),
        ("lokifi.backups.eu", "S3_BUCKET_LOKIFI_BACKUPS_EU"),
        ("archive2", "S3_BUCKET_ARCHIVE2"),
    ],
)
def test_bucket_keys_are_upper_cased_with_every_other_character_an_underscore(
    bucket: str, key: str
) -> None:
    assert bucket_secret_key(bucket) == key
    assert bucket_entries([bucket]) == {key: bucket}


def test_two_buckets_that_would_share_a_key_are_refused() -> None:
    with pytest.raises(SecretKeyCollisionError, match="S3_BUCKET_A_B"):
        bucket_entries(["a-b", "a.b"])


def test_merged_data_is_sorted_and_refuses_conflicting_values() -> None:
    merged = build_connection_secret_data({"REDIS_X": "1"}, {"DATABASE_URL": "u"})
    assert list(merged) == ["DATABASE_URL", "REDIS_X"]
    with pytest.raises(ValueError, match="DATABASE_URL"):
        build_connection_secret_data({"DATABASE_URL": "a"}, {"DATABASE_URL": "b"})
