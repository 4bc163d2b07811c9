"""Setting the series: from the reconciler's status model, the capacity part's measurement, a
part's run, and the runtime; and removing a deleted resource's series.

Every child set per resource is remembered here, so a series that a new status no longer
carries (a removed table, replica or schedule) is removed, and `forget()` removes them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client import Gauge

from lokifi_storage.api.status import BackupStatus, LokifiStorageStatus, RedisStatus
from lokifi_storage.api.timestamps import parse_rfc3339
from lokifi_storage.metrics import series

# Every label tuple set per resource and metric, so stale children can be removed.
_children: dict[tuple[str, str], dict[Any, set[tuple[str, ...]]]] = {}


def _touch(metric: Any, labels: tuple[str, ...]) -> Any:
    key = (labels[0], labels[1])
    _children.setdefault(key, {}).setdefault(metric, set()).add(labels)
    return metric.labels(*labels)


def _replace(
    metric: Gauge, namespace: str, name: str, values: Mapping[tuple[str, ...], float]
) -> None:
    """Set exactly these children of the resource; remove its other children of `metric`."""
    key = (namespace, name)
    current = _children.setdefault(key, {}).setdefault(metric, set())
    wanted = {(namespace, name, *extra) for extra in values}
    for stale in current - wanted:
        metric.remove(*stale)
    current.intersection_update(wanted)
    for extra, value in values.items():
        _touch(metric, (namespace, name, *extra)).set(value)


def set_resync_interval(seconds: float) -> None:
    series.RESYNC_INTERVAL.set(seconds)


def set_shards_held(count: int) -> None:
    series.SHARDS_HELD.set(count)


def observe_part(
    namespace: str, name: str, part: str, seconds: float, ok: bool, reason: str | None = None
) -> None:
    """One reconcile of one part: its duration, and an error (by reason) when not ok."""
    with series.LOCK:
        _touch(series.RECONCILE_DURATION, (namespace, name, part)).observe(seconds)
        _touch(series.RECONCILES, (namespace, name, part)).inc()
        if not ok:
            _touch(series.RECONCILE_ERRORS, (namespace, name, part, reason or "Unknown")).inc()


def set_storage(
    namespace: str,
    name: str,
    *,
    database_bytes: int,
    capacity_bytes: int | None = None,
    threshold_percent: float | None = None,
    growth_bytes_per_day: float | None = None,
    projected_full: date | None = None,
    largest: Mapping[str, int] | None = None,
) -> None:
    """The capacity part's live measurement."""
    with series.LOCK:
        _touch(series.DATABASE_BYTES, (namespace, name)).set(database_bytes)
        optional: list[tuple[Gauge, float | None]] = [
            (series.CAPACITY_BYTES, capacity_bytes),
            (
                series.CAPACITY_USED_RATIO,
                database_bytes / capacity_bytes if capacity_bytes else None,
            ),
            (
                series.CAPACITY_ALERT_THRESHOLD_RATIO,
                threshold_percent / 100 if threshold_percent is not None else None,
            ),
            (series.GROWTH_BYTES_PER_DAY, growth_bytes_per_day),
            (
                series.PROJECTED_FULL_TIMESTAMP,
                datetime(
                    projected_full.year, projected_full.month, projected_full.day, tzinfo=UTC
                ).timestamp()
                if projected_full
                else None,
            ),
        ]
        for gauge, value in optional:
            _replace(gauge, namespace, name, {} if value is None else {(): float(value)})
        if largest is not None:
            _replace(
                series.RELATION_BYTES,
                namespace,
                name,
                {(rel,): float(b) for rel, b in largest.items()},
            )


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        return None


def record_status(namespace: str, name: str, status: LokifiStorageStatus) -> None:
    """Set the gauges that mirror `.status` blocks; a block `status` does not set is left as
    is, a block set replaces that family's series of the resource (so removed tables, replicas
    or schedules disappear)."""
    present = status.model_fields_set
    with series.LOCK:
        if "partitions" in present:
            counts: dict[tuple[str, ...], float] = {}
            default_rows: dict[tuple[str, ...], float] = {}
            for item in status.partitions:
                counts[(item.table, "live")] = float(item.count)
                counts[(item.table, "archived")] = float(item.archived)
                counts[(item.table, "pending_compress")] = float(item.pendingCompress)
                counts[(item.table, "pending_export")] = float(item.pendingExport)
                default_rows[(item.table,)] = float(item.inDefault)
            _replace(series.PARTITIONS, namespace, name, counts)
            _replace(series.DEFAULT_PARTITION_ROWS, namespace, name, default_rows)
        if "replicas" in present:
            lag: dict[tuple[str, ...], float] = {}
            healthy: dict[tuple[str, ...], float] = {}
            for replica in status.replicas:
                healthy[(replica.name,)] = 1.0 if replica.healthy else 0.0
                if replica.lagSeconds is not None:
                    lag[(replica.name,)] = float(replica.lagSeconds)
            _replace(series.REPLICA_LAG_SECONDS, namespace, name, lag)
            _replace(series.REPLICA_HEALTHY, namespace, name, healthy)
        if "redis" in present:
            _record_redis(namespace, name, status.redis or RedisStatus())
        if "backups" in present:
            _record_backups(namespace, name, status.backups)
        if "conditions" in present:
            conditions: dict[tuple[str, ...], float] = {
                (c.type, c.status, c.reason): 1.0 for c in status.conditions
            }
            _replace(series.CONDITION, namespace, name, conditions)


def _record_redis(namespace: str, name: str, redis: RedisStatus) -> None:
    state = redis.clusterState
    _replace(
        series.REDIS_CLUSTER_STATE_OK,
        namespace,
        name,
        {} if state is None else {(): 1.0 if state == "ok" else 0.0},
    )
    slots: dict[tuple[str, ...], float] = {
        (label,): float(value)
        for label, value in (
            ("assigned", redis.slotsAssigned),
            ("ok", redis.slotsOk),
            ("fail", redis.slotsFail),
        )
        if value is not None
    }
    _replace(series.REDIS_SLOTS, namespace, name, slots)
    nodes: dict[tuple[str, ...], float] = {
        (role,): float(value)
        for role, value in (("master", redis.masters), ("replica", redis.replicas))
        if value is not None
    }
    _replace(series.REDIS_NODES, namespace, name, nodes)


def _record_backups(namespace: str, name: str, backups: list[BackupStatus]) -> None:
    last: dict[tuple[str, ...], float] = {}
    size: dict[tuple[str, ...], float] = {}
    count: dict[tuple[str, ...], float] = {}
    verify: dict[tuple[str, ...], float] = {}
    for item in backups:
        schedule = (item.schedule,)
        finished = _timestamp(item.lastSuccessfulTime)
        if finished is not None:
            last[schedule] = finished
        if item.lastSizeBytes is not None:
            size[schedule] = float(item.lastSizeBytes)
        if item.count is not None:
            count[schedule] = float(item.count)
        if item.lastVerifyResult is not None:
            verify[schedule] = 1.0 if item.lastVerifyResult == "Passed" else 0.0
    _replace(series.BACKUP_LAST_SUCCESS, namespace, name, last)
    _replace(series.BACKUP_LAST_SIZE, namespace, name, size)
    _replace(series.BACKUP_COUNT, namespace, name, count)
    _replace(series.BACKUP_VERIFY_OK, namespace, name, verify)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted resource."""
    with series.LOCK:
        for metric, label_sets in _children.pop((namespace, name), {}).items():
            for labels in label_sets:
                metric.remove(*labels)
