"""Claims at the level of each part, against the real Redis Cluster, S3 server and PostgreSQL.

A claimant is what the operator passes for a resource (uid, namespace, name). Each test proves a
conflicting claimant sends nothing (CONFIG SET log, S3 write requests, DDL statements), that an
equal value shares, and that the owner releases what it no longer declares. The Redis setting is
`latency-monitor-threshold`, restored afterwards, and the claims of these
tests are removed (the cluster is shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from partitionkit import NOW, create_messages_table, execute, partition_db, query, table_spec

from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import ObjectStorageSpec, PostgresSpec, RedisSpec
from lokifi_storage.clients.redis import CLAIMS_KEY, RedisNodes
from lokifi_storage.clients.s3 import RequestCounter, make_client
from lokifi_storage.domain.claims import Claimant
from lokifi_storage.reconcile.object_storage import reconcile_object_storage
from lokifi_storage.reconcile.partitions import reconcile_partitions, reconcile_tables
from lokifi_storage.reconcile.redis import reconcile_redis, release_redis_claims
from stackfixtures import PgDatabase, StackEnv, restore_redis_setting

SETTING = "latency-monitor-threshold"
A = Claimant(uid="it-claims-aaaa", namespace="team-a", name="prod")
B = Claimant(uid="it-claims-bbbb", namespace="team-b", name="prod")


@pytest.fixture
def shared_setting(stack: StackEnv) -> Iterator[None]:
    cluster = stack.redis_cluster()
    original = cluster.config_get(SETTING, target_nodes=cluster.ALL_NODES)
    try:
        yield
    finally:
        restore_redis_setting(cluster, SETTING, original)
        cluster.hdel(CLAIMS_KEY, SETTING)
        cluster.close()


def _redis(stack: StackEnv, value: str) -> RedisSpec:
    return RedisSpec.model_validate(
        {
            "nodes": [{"host": h, "port": p} for h, p in stack.redis_nodes[:2]],
            "settings": {SETTING: value},
        }
    )


def test_redis_conflict_sends_no_config_set_equal_shares_owner_releases(
    stack: StackEnv, shared_setting: None
) -> None:
    first = reconcile_redis(_redis(stack, "111"), stack.redis_password, claimant=A)
    assert first.condition.status == "True", first.condition.message
    assert f"claimed setting {SETTING}" in " ".join(first.actions)

    with RedisNodes(stack.redis_password) as nodes:
        rival = reconcile_redis(_redis(stack, "222"), stack.redis_password, nodes=nodes, claimant=B)
        assert nodes.config_set_log == []
    assert rival.condition.reason == Reason.CONFLICT
    assert "team-a/prod" in rival.condition.message
    assert "'111'" in rival.condition.message

    with RedisNodes(stack.redis_password) as nodes:
        same = reconcile_redis(_redis(stack, "111"), stack.redis_password, nodes=nodes, claimant=B)
        assert nodes.config_set_log == []
    assert same.condition.status == "True", same.condition.message
    assert same.actions == []

    released = release_redis_claims(_redis(stack, "111"), stack.redis_password, A)
    assert released == [r for r in released if SETTING in r]
    assert released
    after = reconcile_redis(_redis(stack, "222"), stack.redis_password, claimant=B)
    assert after.condition.status == "True", after.condition.message
    assert any(a.startswith(f"CONFIG SET {SETTING} 222") for a in after.actions)


def _storage(stack: StackEnv, bucket: str, rules: list[dict[str, Any]]) -> ObjectStorageSpec:
    return ObjectStorageSpec.model_validate(
        {
            "endpoint": stack.s3_endpoint,
            "allowPlainHttp": True,
            "region": stack.aws_region,
            "credentialsSecretRef": {"name": "lokifi-s3"},
            "buckets": [{"name": bucket, "lifecycle": rules}],
        }
    )


RULE = {"id": "expire-scratch", "prefix": "scratch/", "expirationDays": 30}


def test_a_shared_rule_is_not_retired_by_the_resource_that_did_not_claim_it(
    stack: StackEnv, s3_bucket: str
) -> None:
    keys = (stack.aws_access_key_id, stack.aws_secret_access_key)
    owner = reconcile_object_storage(_storage(stack, s3_bucket, [RULE]), *keys, claimant=A)
    assert owner.condition.status == "True", owner.condition.message

    client = make_client(stack.s3_endpoint, stack.aws_region, *keys)
    counter = RequestCounter().attach(client)
    other = {**RULE, "expirationDays": 60}
    rival = reconcile_object_storage(
        _storage(stack, s3_bucket, [other]), *keys, client=client, claimant=B
    )
    assert rival.condition.reason == Reason.CONFLICT
    assert "team-a/prod" in rival.condition.message
    assert counter.writes == 0

    shared = reconcile_object_storage(
        _storage(stack, s3_bucket, [RULE]), *keys, client=client, claimant=B
    )
    assert shared.condition.status == "True", shared.condition.message
    assert counter.writes == 0
    # B drops the rule it only shared: A's rule stays on the bucket.
    dropped = reconcile_object_storage(
        _storage(stack, s3_bucket, []),
        *keys,
        client=client,
        claimant=B,
        previously_managed={s3_bucket: ["expire-scratch"]},
    )
    assert dropped.condition.status == "True", dropped.condition.message
    assert counter.writes == 0
    rules = stack.s3_client().get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert [(r["ID"], r["Expiration"]["Days"]) for r in rules] == [("expire-scratch", 30)]


def test_a_table_another_resource_manages_gets_no_ddl_and_is_released_when_undeclared(
    pg_database: PgDatabase,
) -> None:
    create_messages_table(pg_database)
    execute(pg_database, "COMMENT ON TABLE ai_messages IS 'Chat messages, one row each.'")
    with partition_db(pg_database) as db:
        owner = reconcile_tables(db, [table_spec(premake=2)], NOW, claimant=A)
    assert owner.report().condition.status == "True"
    with partition_db(pg_database) as db:
        rival = reconcile_tables(db, [table_spec(premake=5)], NOW, claimant=B)
        assert db.writes == []
    condition = rival.report().condition
    assert condition.reason == Reason.CONFLICT
    assert "team-a/prod" in condition.message
    with partition_db(pg_database) as db:
        shared = reconcile_tables(db, [table_spec(premake=2)], NOW, claimant=B)
        assert db.writes == []
    assert shared.report().condition.status == "True"

    postgres = PostgresSpec.model_validate(
        {
            "primary": {"secretRef": {"name": "db", "key": "url"}},
            "tables": [{"name": "ai_threads_elsewhere"}],
        }
    )
    reconcile_partitions(postgres, pg_database, now=NOW, claimant=A)
    ((comment,),) = query(pg_database, "SELECT obj_description('ai_messages'::regclass)")
    assert comment == "Chat messages, one row each."
