"""Redis, S3 and clean-up writes ask the leader's fence one by one, on the real servers.

A leader that lost its Lease (or was paused past its renewal deadline) must send nothing more:
the partitions part asks the fence before each statement, the Kubernetes client before each
request, and here the Redis client before each CONFIG SET, CONFIG REWRITE and claim, the S3
client before each call that changes something (botocore's before-call hook), and the drop of
an empty archive table before its lock and its DROP. A fence that shuts after the first write
lets exactly that one through.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis

from lokifi_storage.api.spec import ObjectStorageSpec, RedisNodeSpec, RedisSpec
from lokifi_storage.clients.postgres.cleanup import drop_empty_archive_tables
from lokifi_storage.clients.redis import CLAIMS_KEY, RedisNodes
from lokifi_storage.clients.s3 import RequestCounter, make_client
from lokifi_storage.domain.claims import Claimant
from lokifi_storage.reconcile.fence import Fence, LeadershipLost
from lokifi_storage.reconcile.lifecycle_claims import release_lifecycle_claims
from lokifi_storage.reconcile.object_storage import reconcile_object_storage
from lokifi_storage.reconcile.redis import reconcile_redis, release_redis_claims
from stackfixtures import PgDatabase, StackEnv

KEY = "slowlog-max-len"
RULE = {"id": "FencedRule", "prefix": "fenced/", "expirationDays": 3}


def _claimant() -> Claimant:
    return Claimant(uid=str(uuid.uuid4()), namespace="fenced", name="writes")


def _open_for(writes: int) -> tuple[Callable[[str], None], list[str]]:
    """A fence that lets `writes` writes through, then is shut; and what it was asked."""
    fence = Fence()
    asked: list[str] = []

    def check(what: str) -> None:
        asked.append(what)
        if len(asked) > writes:
            fence.lose()
        fence.check(what)

    return check, asked


def _redis(stack: StackEnv, port: int) -> redis.Redis:
    host = stack.redis_nodes[0][0]
    return redis.Redis(host=host, port=port, password=stack.redis_password, decode_responses=True)


def _config_sets(stack: StackEnv) -> int:
    """CONFIG SET calls the cluster's nodes have served, all together."""
    total = 0
    for _, port in stack.redis_nodes:
        conn = _redis(stack, port)
        try:
            stats = conn.info("commandstats")
        finally:
            conn.close()
        total += int(stats.get("cmdstat_config|set", {}).get("calls", 0))
    return total


def _claims_of(stack: StackEnv, claimant: Claimant) -> list[str]:
    conn = redis.RedisCluster(
        host=stack.redis_nodes[0][0],
        port=stack.redis_nodes[0][1],
        password=stack.redis_password,
        decode_responses=True,
    )
    try:
        raw: dict[str, str] = conn.hgetall(CLAIMS_KEY)  # type: ignore[assignment]
    finally:
        conn.close()
    return [setting for setting, text in raw.items() if claimant.uid in text]


def test_redis_writes_stop_at_the_fence_one_by_one(stack: StackEnv) -> None:
    conn = _redis(stack, stack.redis_nodes[0][1])
    try:
        before = str(conn.config_get(KEY)[KEY])
    finally:
        conn.close()
    wanted = str(int(before) + 17)
    spec = RedisSpec(
        nodes=[RedisNodeSpec(host=h, port=p) for h, p in stack.redis_nodes[:3]],
        settings={KEY: wanted},
    )
    claimant = _claimant()
    sets_before = _config_sets(stack)
    try:
        shut = Fence()
        shut.lose()
        with pytest.raises(LeadershipLost, match=f"HSETNX {CLAIMS_KEY} {KEY}"):
            reconcile_redis(spec, stack.redis_password, claimant=claimant, before_write=shut.check)
        assert _claims_of(stack, claimant) == []
        assert _config_sets(stack) == sets_before

        check, asked = _open_for(1)  # the claim goes through, the first CONFIG SET does not
        with RedisNodes(stack.redis_password, before_write=check) as nodes:
            with pytest.raises(LeadershipLost, match=f"CONFIG SET {KEY} on Redis node"):
                reconcile_redis(spec, stack.redis_password, nodes=nodes, claimant=claimant)
            assert nodes.config_set_log == []
        assert len(asked) == 2
        assert _claims_of(stack, claimant) == [KEY]
        assert _config_sets(stack) == sets_before

        report = reconcile_redis(
            spec, stack.redis_password, claimant=claimant, before_write=Fence().check
        )
        assert report.condition.status == "True", report.condition.message
        assert _config_sets(stack) == sets_before + len(stack.redis_nodes)
    finally:
        for _, port in stack.redis_nodes:
            node = _redis(stack, port)
            try:
                node.config_set(KEY, before)
                node.execute_command("CONFIG", "REWRITE")
            finally:
                node.close()
        release_redis_claims(spec, stack.redis_password, claimant)
    assert _claims_of(stack, claimant) == []


def _s3_spec(stack: StackEnv, bucket: str) -> ObjectStorageSpec:
    return ObjectStorageSpec.model_validate(
        {
            "endpoint": stack.s3_endpoint,
            "allowPlainHttp": True,
            "region": stack.aws_region,
            "credentialsSecretRef": {"name": "lokifi-s3"},
            "buckets": [{"name": bucket, "lifecycle": [RULE]}],
        }
    )


def _rules(stack: StackEnv, bucket: str) -> list[dict[str, Any]]:
    s3 = stack.s3_client()
    try:
        return list(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
    except s3.exceptions.ClientError as error:
        if "NoSuchLifecycleConfiguration" in str(error):
            return []
        raise


def test_s3_writes_stop_at_the_fence_one_by_one(stack: StackEnv, s3_bucket: str) -> None:
    client = make_client(
        stack.s3_endpoint, stack.aws_region, stack.aws_access_key_id, stack.aws_secret_access_key
    )
    counter = RequestCounter().attach(client)
    spec = _s3_spec(stack, s3_bucket)
    claimant = _claimant()

    def run(check: Callable[[str], None] | None) -> Any:
        return reconcile_object_storage(
            spec,
            stack.aws_access_key_id,
            stack.aws_secret_access_key,
            client=client,
            claimant=claimant,
            before_write=check,
        )

    shut = Fence()
    shut.lose()
    with pytest.raises(LeadershipLost, match="S3 PutBucketTagging"):
        run(shut.check)  # the claim (a bucket tag) is the first write
    assert counter.writes == 0  # HTTP requests that change something: none was sent

    check, asked = _open_for(1)  # the claim goes through, the rules do not
    with pytest.raises(LeadershipLost, match="S3 PutBucketLifecycleConfiguration"):
        run(check)
    assert asked == ["S3 PutBucketTagging", "S3 PutBucketLifecycleConfiguration"]
    assert counter.writes == 1  # the tag's PUT
    assert _rules(stack, s3_bucket) == []

    report = run(None)  # the hook went with the pass that set it: this client writes freely
    assert report.condition.status == "True", report.condition.message
    assert [rule["ID"] for rule in _rules(stack, s3_bucket)] == ["FencedRule"]

    with pytest.raises(LeadershipLost, match="S3 DeleteBucketTagging"):  # its last tag goes
        release_lifecycle_claims(
            spec,
            stack.aws_access_key_id,
            stack.aws_secret_access_key,
            claimant,
            client=client,
            before_write=shut.check,
        )
    released = release_lifecycle_claims(
        spec, stack.aws_access_key_id, stack.aws_secret_access_key, claimant, client=client
    )
    assert released == [f"bucket {s3_bucket}: released lifecycle rule claims FencedRule"]


def test_an_empty_archive_table_is_not_dropped_past_the_fence(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA archive")
        conn.execute("CREATE TABLE archive.a (id int) PARTITION BY RANGE (id)")
        conn.execute("CREATE TABLE archive.b (id int) PARTITION BY RANGE (id)")
    tables = [("archive", "a"), ("archive", "b")]

    check, asked = _open_for(2)  # a: locked and dropped; b: refused before its lock
    with pytest.raises(LeadershipLost, match=r"locking archive table archive\.b"):
        drop_empty_archive_tables(pg_database, tables, check)
    assert asked == [
        "locking archive table archive.a to drop it if empty",
        "dropping empty archive table archive.a",
        "locking archive table archive.b to drop it if empty",
    ]
    with psycopg.connect(pg_database) as conn:
        left = conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE nspname = 'archive' ORDER BY 1"
        ).fetchall()
    assert left == [("b",)]
