"""Helpers behind tests/conftest.py: read stack.env, start the stack when it is not up, and
create/clean the per-test database, key prefix, bucket and namespace.

Kept out of conftest.py so conftest stays a list of fixtures. Nothing here knows the operator:
these are plain clients of the servers `python -m stack up` starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def state_dir() -> Path:
    """Same rule as stack/state.py: $LOKIFI_STACK_DIR, else ~/.local/state/lokifi-stack."""
    configured = os.environ.get("LOKIFI_STACK_DIR")
    path = Path(configured) if configured else Path.home() / ".local" / "state" / "lokifi-stack"
    return path.expanduser().resolve()


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class StackEnv:
    """The values of stack.env: where each real server of the local stack answers.

    `kubeconfig`/`kubectl` are None when Kubernetes is not up; the `kube_stack` fixture
    guarantees them.
    """

    env: dict[str, str]
    pg_primary_url: str
    pg_replica_url: str
    pg_bin: str
    redis_nodes: tuple[tuple[str, int], ...]
    redis_password: str
    s3_endpoint: str
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_region: str
    kubeconfig: str | None
    kubectl: str | None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> StackEnv:
        nodes = []
        for node in env["LOKIFI_REDIS_NODES"].split(","):
            host, _, port = node.rpartition(":")
            nodes.append((host, int(port)))
        return cls(
            env=env,
            pg_primary_url=env["LOKIFI_PG_PRIMARY_URL"],
            pg_replica_url=env["LOKIFI_PG_REPLICA_URL"],
            pg_bin=env["LOKIFI_PG_BIN"],
            redis_nodes=tuple(nodes),
            redis_password=env["LOKIFI_REDIS_PASSWORD"],
            s3_endpoint=env["LOKIFI_S3_ENDPOINT"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_region=env["AWS_DEFAULT_REGION"],
            kubeconfig=env.get("KUBECONFIG"),
            kubectl=env.get("KUBECTL"),
        )

    def s3_client(self) -> Any:
        """A boto3 S3 client for the stack's endpoint with the stack's keys (not the caller's)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            region_name=self.aws_region,
        )

    def redis_cluster(self) -> Any:
        """A redis-py RedisCluster client over every node of the stack."""
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in self.redis_nodes
            ],
            password=self.redis_password,
            decode_responses=True,
        )

    def kubectl_argv(self, *args: str) -> list[str]:
        if self.kubectl is None or self.kubeconfig is None:
            raise RuntimeError("Kubernetes is not part of this stack.env; use kube_stack")
        return [self.kubectl, "--kubeconfig", self.kubeconfig, *args]


PG_REDIS_S3_KEYS = (
    "LOKIFI_PG_PRIMARY_URL",
    "LOKIFI_PG_REPLICA_URL",
    "LOKIFI_PG_BIN",
    "LOKIFI_REDIS_NODES",
    "LOKIFI_REDIS_PASSWORD",
    "LOKIFI_S3_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _url_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def _pg_redis_s3_answer(env: dict[str, str]) -> bool:
    if any(key not in env for key in PG_REDIS_S3_KEYS):
        return False
    stack = StackEnv.from_env(env)
    endpoints = [
        _url_port(stack.pg_primary_url),
        _url_port(stack.pg_replica_url),
        _url_port(stack.s3_endpoint),
        *stack.redis_nodes,
    ]
    return all(_port_answers(host, port) for host, port in endpoints)


def _kube_answers(env: dict[str, str]) -> bool:
    if "KUBECONFIG" not in env or "KUBECTL" not in env:
        return False
    probe = subprocess.run(
        [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"], "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "ok"


def run_stack_up(services: Sequence[str]) -> None:
    """`python -m stack up --only ...`; raises with its output when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "stack", "up", "--only", ",".join(services)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`python -m stack up --only {','.join(services)}` failed:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def ensure_stack(with_kube: bool) -> StackEnv:
    """Read stack.env; bring up whatever part of the stack does not answer, then re-read it."""
    env_file = state_dir() / "stack.env"
    env = read_env_file(env_file)
    if not _pg_redis_s3_answer(env):
        run_stack_up(["pg", "redis", "s3"])
        env = read_env_file(env_file)
    if with_kube and not _kube_answers(env):
        run_stack_up(["kube"])
        env = read_env_file(env_file)
    return StackEnv.from_env(env)


# --- unique names ----------------------------------------------------------------------------


def unique_name(test_name: str, max_len: int, sep: str = "_") -> str:
    """`t<sep><slug of the test name><sep><8 hex>`, lower case, at most max_len characters."""
    suffix = secrets.token_hex(4)
    slug = re.sub(r"[^a-z0-9]+", sep, test_name.lower()).strip(sep)
    room = max_len - len(suffix) - 2 * len(sep) - 1
    slug = slug[:room].rstrip(sep)
    return f"t{sep}{slug}{sep}{suffix}"


# --- PostgreSQL ------------------------------------------------------------------------------


class PgDatabase(str):
    """A fresh database: the string itself is its URL on the primary (so it can be passed
    straight to psycopg.connect); `.replica_url` is the same database on the streaming replica,
    `.primary_url` the primary URL again, `.name` the database name."""

    name: str
    primary_url: str
    replica_url: str

    def __new__(cls, name: str, primary_url: str, replica_url: str) -> PgDatabase:
        obj = super().__new__(cls, primary_url)
        obj.name = name
        obj.primary_url = primary_url
        obj.replica_url = replica_url
        return obj


def with_dbname(url: str, dbname: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(dbname)))


def create_database(stack: StackEnv, name: str) -> PgDatabase:
    """CREATE DATABASE on the primary, then wait until the replica has replayed it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(stack.pg_primary_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = PgDatabase(
        name, with_dbname(stack.pg_primary_url, name), with_dbname(stack.pg_replica_url, name)
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(db.replica_url, connect_timeout=5):
                return db
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def drop_database(stack: StackEnv, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(stack.pg_primary_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- Redis -----------------------------------------------------------------------------------


def delete_prefixed_keys(stack: StackEnv, prefix: str) -> None:
    """Delete every key starting with prefix on every master (one key per DEL: no CROSSSLOT)."""
    from redis.cluster import RedisCluster

    client = stack.redis_cluster()
    try:
        for key in client.scan_iter(match=f"{prefix}*", target_nodes=RedisCluster.PRIMARIES):
            client.delete(key)
    finally:
        client.close()


# The hash in which operators record which LokifiStorage manages which Redis setting
# (operator/lokifi_storage/clients/redis.py CLAIMS_KEY).
REDIS_CLAIMS_KEY = "lokifi-storage:claims"


def restore_redis_setting(cluster: Any, setting: str, original: dict[str, Any]) -> None:
    """Put `setting` back on every node as `original` (CONFIG GET over all nodes, read before
    the test) had it, and persist it; best effort, for a test's clean-up."""
    for node_name, values in original.items():
        host, _, port = node_name.rpartition(":")
        node = cluster.get_node(host=host, port=int(port))
        if node is not None and setting in values:
            with contextlib.suppress(Exception):
                cluster.config_set(setting, values[setting], target_nodes=node)
                cluster.config_rewrite(target_nodes=node)


def release_redis_claims(stack: StackEnv, namespaces: Iterable[str]) -> list[str]:
    """Remove the Redis setting claims of resources in `namespaces` (the cluster is shared, and a
    test's operator may stop before it sees its resource deleted); the settings released."""
    import json

    wanted = set(namespaces)
    client = stack.redis_cluster()
    released = []
    try:
        for setting, text in client.hgetall(REDIS_CLAIMS_KEY).items():
            try:
                owner = str(json.loads(text).get("owner", ""))
            except ValueError:
                continue
            if owner.partition("/")[0] in wanted:
                client.hdel(REDIS_CLAIMS_KEY, setting)
                released.append(setting)
    finally:
        client.close()
    return released


def release_stale_redis_claims(stack: StackEnv) -> list[str]:
    """Remove the Redis setting claims whose owner's namespace no longer exists: left by a run
    that was killed before its teardown, they would make this run's resources Conflict."""
    import json

    live = set(kubectl(stack, "get", "namespaces", "-o", "name").split())
    client = stack.redis_cluster()
    released = []
    try:
        for setting, text in client.hgetall(REDIS_CLAIMS_KEY).items():
            try:
                owner = str(json.loads(text).get("owner", ""))
            except ValueError:
                continue
            if f"namespace/{owner.partition('/')[0]}" not in live:
                client.hdel(REDIS_CLAIMS_KEY, setting)
                released.append(setting)
    finally:
        client.close()
    return released


# --- S3 --------------------------------------------------------------------------------------


def empty_and_delete_bucket(stack: StackEnv, bucket: str) -> None:
    """Remove every object version, delete marker and open multipart upload, then the bucket."""
    s3 = stack.s3_client()
    try:
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for upload in uploads:
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass


# --- Kubernetes ------------------------------------------------------------------------------


def kubectl(stack: StackEnv, *args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        stack.kubectl_argv(*args),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout
