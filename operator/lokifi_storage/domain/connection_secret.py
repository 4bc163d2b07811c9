"""The data of the connection Secret application pods read: a pure builder, one part at a time.

The keys are those the seed's `.env.production` carried, so the application reads the Secret
with `envFrom` unchanged. Each part builds its own keys (so a part that is down still
contributes what the spec alone decides, e.g. bucket names), and `build_connection_secret_data`
merges them for whoever writes the Secret.

Choices that keep the Secret stable (every change restarts or reconfigures readers):
- `DATABASE_REPLICA_URL` names the first healthy replica in spec order, not the least lagged
  one, so it does not flip between replicas from one reconcile to the next.
- With no healthy replica, `DATABASE_REPLICA_URL` and `DATABASE_REPLICA_URLS` both name the
  primary, so readers that pick from the list still have a server that answers.
- `REDIS_CLUSTER_NODES` lists the seed nodes of the spec (stable service names), not the
  discovered node addresses (pod IPs that change on every restart).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from lokifi_storage.api.spec import PoolSpec, RedisNodeSpec

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NON_ALNUM = re.compile(r"[^A-Z0-9]")


class SecretKeyCollisionError(ValueError):
    """Two buckets would write the same S3_BUCKET_<NAME> key (e.g. `a-b` and `a.b`)."""


def with_driver(url: str, driver: str) -> str:
    """Return `url` with its scheme replaced by `driver`; the rest is kept byte for byte.

    Only the scheme is touched so a password with characters a URL parser would re-encode
    reaches the application exactly as the admin wrote it.
    """
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError("database URL has no scheme (expected postgresql://...)")
    return f"{driver}://{url[match.end() :]}"


def database_entries(
    primary_url: str,
    healthy_replica_urls: Sequence[str],
    pool: PoolSpec,
    driver: str,
) -> dict[str, str]:
    """DATABASE_* keys: the primary, the healthy replicas in spec order, the pool settings."""
    primary = with_driver(primary_url, driver)
    replicas = [with_driver(url, driver) for url in healthy_replica_urls] or [primary]
    return {
        "DATABASE_URL": primary,
        "DATABASE_REPLICA_URL": replicas[0],
        "DATABASE_REPLICA_URLS": ",".join(replicas),
        "DATABASE_POOL_SIZE": str(pool.size),
        "DATABASE_MAX_OVERFLOW": str(pool.maxOverflow),
        "DATABASE_POOL_TIMEOUT": str(pool.timeoutSeconds),
        "DATABASE_POOL_RECYCLE": str(pool.recycleSeconds),
    }


def redis_entries(nodes: Iterable[RedisNodeSpec], context_ttl_seconds: int) -> dict[str, str]:
    """REDIS_* keys: the seed nodes as host:port,... and the conversation-context TTL."""
    return {
        "REDIS_CLUSTER_NODES": ",".join(f"{node.host}:{node.port}" for node in nodes),
        "REDIS_CONTEXT_TTL_SECONDS": str(context_ttl_seconds),
    }


def bucket_secret_key(bucket: str) -> str:
    """`lokifi-media` -> `S3_BUCKET_LOKIFI_MEDIA`: upper-cased, every non-alphanumeric -> `_`."""
    return "S3_BUCKET_" + _NON_ALNUM.sub("_", bucket.upper())


def bucket_entries(buckets: Iterable[str]) -> dict[str, str]:
    """One S3_BUCKET_<NAME> per bucket; refuses names that would share a key."""
    data: dict[str, str] = {}
    for bucket in buckets:
        key = bucket_secret_key(bucket)
        if key in data and data[key] != bucket:
            raise SecretKeyCollisionError(
                f"buckets {data[key]!r} and {bucket!r} would both be written as {key}; "
                "rename one of them"
            )
        data[key] = bucket
    return data


def build_connection_secret_data(*parts: Mapping[str, str]) -> dict[str, str]:
    """Merge the parts' entries into the Secret's data, keys sorted for a stable object.

    Parts own disjoint key prefixes (DATABASE_, REDIS_, S3_BUCKET_); a key given twice with
    different values is a programming error, not something to resolve silently.
    """
    merged: dict[str, str] = {}
    for part in parts:
        for key, value in part.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"connection Secret key {key} given twice with different values")
            merged[key] = value
    return dict(sorted(merged.items()))
