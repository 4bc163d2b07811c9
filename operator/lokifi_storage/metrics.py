"""Prometheus metrics of the operator: one registry, the documented series, and how to serve it.

docs/metrics.md lists every series; docs/grafana-dashboard.json draws them. Every series carries
`namespace` and `name` (of the LokifiStorage), so one operator watching many resources exposes
them side by side, and `forget()` removes a deleted resource's series entirely.

Who feeds what:
- `observe_part(...)`: the resource reconciler, once per part per reconcile (duration, errors).
- `record_status(...)`: the resource reconciler, after a reconcile, with the status model it
  computed: partitions, replicas, Redis, backups and conditions are read from it.
- `set_storage(...)`: the capacity part, with the live measurement (status.storage moves only
  hourly, see domain/capacity.py; the metric is always current).
- `start_metrics_server(port)`: `lokifi-storage run`.

Values that grow between reconciles are computed at scrape time: the newest backup's age is
`now - last success`, not a number frozen at the last reconcile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lokifi_storage.api.status import BackupStatus, LokifiStorageStatus, RedisStatus
from lokifi_storage.api.timestamps import parse_rfc3339

__all__ = [
    "REGISTRY",
    "forget",
    "observe_part",
    "record_status",
    "set_resync_interval",
    "set_shards_held",
    "set_storage",
    "start_metrics_server",
]

REGISTRY = CollectorRegistry(auto_describe=True)
_BASE = ("namespace", "name")
_lock = threading.Lock()

DATABASE_BYTES = Gauge(
    "lokifi_storage_database_bytes",
    "Size of the primary's database (pg_database_size), measured at the last reconcile.",
    _BASE,
    registry=REGISTRY,
)
CAPACITY_BYTES = Gauge(
    "lokifi_storage_capacity_bytes", "spec.monitoring.capacity in bytes.", _BASE, registry=REGISTRY
)
CAPACITY_USED_RATIO = Gauge(
    "lokifi_storage_capacity_used_ratio",
    "database_bytes / capacity_bytes (0..1; above 1 when over capacity).",
    _BASE,
    registry=REGISTRY,
)
CAPACITY_ALERT_THRESHOLD_RATIO = Gauge(
    "lokifi_storage_capacity_alert_threshold_ratio",
    "spec.monitoring.alertThresholdPercent / 100.",
    _BASE,
    registry=REGISTRY,
)
GROWTH_BYTES_PER_DAY = Gauge(
    "lokifi_storage_growth_bytes_per_day",
    "Least-squares growth of the database over the recorded samples.",
    _BASE,
    registry=REGISTRY,
)
PROJECTED_FULL_TIMESTAMP = Gauge(
    "lokifi_storage_projected_full_timestamp_seconds",
    "Unix time the capacity is projected to be reached (absent when not growing).",
    _BASE,
    registry=REGISTRY,
)
RELATION_BYTES = Gauge(
    "lokifi_storage_relation_bytes",
    "Size of the largest tables and partitions (heap, indexes, TOAST).",
    (*_BASE, "relation"),
    registry=REGISTRY,
)
PARTITIONS = Gauge(
    "lokifi_storage_partitions",
    "Partitions of a managed table, by state (live: attached to the table; archived; "
    "pending_compress / pending_export: waiting for the partitions Jobs).",
    (*_BASE, "table", "state"),
    registry=REGISTRY,
)
DEFAULT_PARTITION_ROWS = Gauge(
    "lokifi_storage_default_partition_rows",
    "Rows in the table's DEFAULT partition (rows no range partition covers).",
    (*_BASE, "table"),
    registry=REGISTRY,
)
REPLICA_LAG_SECONDS = Gauge(
    "lokifi_storage_replica_lag_seconds",
    "Replication lag of a read replica, in seconds.",
    (*_BASE, "replica"),
    registry=REGISTRY,
)
REPLICA_HEALTHY = Gauge(
    "lokifi_storage_replica_healthy",
    "1 when the replica is named in the connection Secret, else 0.",
    (*_BASE, "replica"),
    registry=REGISTRY,
)
REDIS_CLUSTER_STATE_OK = Gauge(
    "lokifi_storage_redis_cluster_state_ok",
    "1 when CLUSTER INFO reports cluster_state:ok, else 0.",
    _BASE,
    registry=REGISTRY,
)
REDIS_SLOTS = Gauge(
    "lokifi_storage_redis_slots",
    "Hash slots by state (assigned, ok, fail) as CLUSTER INFO reports them.",
    (*_BASE, "state"),
    registry=REGISTRY,
)
REDIS_NODES = Gauge(
    "lokifi_storage_redis_nodes",
    "Redis Cluster nodes by role (master, replica).",
    (*_BASE, "role"),
    registry=REGISTRY,
)
BACKUP_LAST_SUCCESS = Gauge(
    "lokifi_storage_backup_last_success_timestamp_seconds",
    "Unix time the newest complete backup of the schedule was finished.",
    (*_BASE, "schedule"),
    registry=REGISTRY,
)
BACKUP_LAST_SIZE = Gauge(
    "lokifi_storage_backup_last_size_bytes",
    "Stored (compressed) size of the newest backup of the schedule.",
    (*_BASE, "schedule"),
    registry=REGISTRY,
)
BACKUP_COUNT = Gauge(
    "lokifi_storage_backups",
    "Complete backups of the schedule in the bucket.",
    (*_BASE, "schedule"),
    registry=REGISTRY,
)
BACKUP_VERIFY_OK = Gauge(
    "lokifi_storage_backup_last_verify_ok",
    "1 when the schedule's most recent restore verification passed, 0 when it failed.",
    (*_BASE, "schedule"),
    registry=REGISTRY,
)
CONDITION = Gauge(
    "lokifi_storage_condition",
    "1 for the current status and reason of each condition type.",
    (*_BASE, "type", "status", "reason"),
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "lokifi_storage_reconcile_duration_seconds",
    "Time one part's observe-plan-apply-report took.",
    (*_BASE, "part"),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
RECONCILES = Counter(
    "lokifi_storage_reconciles",
    "Reconciles of a part (successful or not).",
    (*_BASE, "part"),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "lokifi_storage_reconcile_errors",
    "Reconciles of a part that ended with its condition False, by reason.",
    (*_BASE, "part", "reason"),
    registry=REGISTRY,
)

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


class _BackupAgeCollector(Collector):
    """`lokifi_storage_backup_newest_age_seconds`, computed when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "lokifi_storage_backup_newest_age_seconds",
            "Seconds since the newest complete backup of the schedule finished.",
            labels=[*_BASE, "schedule"],
        )
        now = time.time()
        with _lock:
            samples = [s for m in BACKUP_LAST_SUCCESS.collect() for s in m.samples]
        for sample in samples:
            labels = sample.labels
            family.add_metric(
                [labels["namespace"], labels["name"], labels["schedule"]], now - sample.value
            )
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "lokifi_storage_backup_newest_age_seconds",
                "Seconds since the newest complete backup of the schedule finished.",
                labels=[*_BASE, "schedule"],
            )
        ]


REGISTRY.register(_BackupAgeCollector())


RESYNC_INTERVAL = Gauge(
    "lokifi_storage_resync_interval_seconds",
    "The resync interval in force: --resync-seconds, or longer while one round of every"
    " resource cannot finish inside it (runtime/controller.py).",
    registry=REGISTRY,
)


SHARDS_HELD = Gauge(
    "lokifi_storage_shards_held",
    "Shards this replica serves (sharded mode, runtime/sharding.py).",
    registry=REGISTRY,
)


def set_resync_interval(seconds: float) -> None:
    RESYNC_INTERVAL.set(seconds)


def set_shards_held(count: int) -> None:
    SHARDS_HELD.set(count)


def observe_part(
    namespace: str, name: str, part: str, seconds: float, ok: bool, reason: str | None = None
) -> None:
    """One reconcile of one part: its duration, and an error (by reason) when not ok."""
    with _lock:
        _touch(RECONCILE_DURATION, (namespace, name, part)).observe(seconds)
        _touch(RECONCILES, (namespace, name, part)).inc()
        if not ok:
            _touch(RECONCILE_ERRORS, (namespace, name, part, reason or "Unknown")).inc()


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
    with _lock:
        _touch(DATABASE_BYTES, (namespace, name)).set(database_bytes)
        optional: list[tuple[Gauge, float | None]] = [
            (CAPACITY_BYTES, capacity_bytes),
            (
                CAPACITY_USED_RATIO,
                database_bytes / capacity_bytes if capacity_bytes else None,
            ),
            (
                CAPACITY_ALERT_THRESHOLD_RATIO,
                threshold_percent / 100 if threshold_percent is not None else None,
            ),
            (GROWTH_BYTES_PER_DAY, growth_bytes_per_day),
            (
                PROJECTED_FULL_TIMESTAMP,
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
                RELATION_BYTES, namespace, name, {(rel,): float(b) for rel, b in largest.items()}
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
    with _lock:
        if "partitions" in present:
            counts: dict[tuple[str, ...], float] = {}
            default_rows: dict[tuple[str, ...], float] = {}
            for item in status.partitions:
                counts[(item.table, "live")] = float(item.count)
                counts[(item.table, "archived")] = float(item.archived)
                counts[(item.table, "pending_compress")] = float(item.pendingCompress)
                counts[(item.table, "pending_export")] = float(item.pendingExport)
                default_rows[(item.table,)] = float(item.inDefault)
            _replace(PARTITIONS, namespace, name, counts)
            _replace(DEFAULT_PARTITION_ROWS, namespace, name, default_rows)
        if "replicas" in present:
            lag: dict[tuple[str, ...], float] = {}
            healthy: dict[tuple[str, ...], float] = {}
            for replica in status.replicas:
                healthy[(replica.name,)] = 1.0 if replica.healthy else 0.0
                if replica.lagSeconds is not None:
                    lag[(replica.name,)] = float(replica.lagSeconds)
            _replace(REPLICA_LAG_SECONDS, namespace, name, lag)
            _replace(REPLICA_HEALTHY, namespace, name, healthy)
        if "redis" in present:
            _record_redis(namespace, name, status.redis or RedisStatus())
        if "backups" in present:
            _record_backups(namespace, name, status.backups)
        if "conditions" in present:
            conditions: dict[tuple[str, ...], float] = {
                (c.type, c.status, c.reason): 1.0 for c in status.conditions
            }
            _replace(CONDITION, namespace, name, conditions)


def _record_redis(namespace: str, name: str, redis: RedisStatus) -> None:
    state = redis.clusterState
    _replace(
        REDIS_CLUSTER_STATE_OK,
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
    _replace(REDIS_SLOTS, namespace, name, slots)
    nodes: dict[tuple[str, ...], float] = {
        (role,): float(value)
        for role, value in (("master", redis.masters), ("replica", redis.replicas))
        if value is not None
    }
    _replace(REDIS_NODES, namespace, name, nodes)


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
    _replace(BACKUP_LAST_SUCCESS, namespace, name, last)
    _replace(BACKUP_LAST_SIZE, namespace, name, size)
    _replace(BACKUP_COUNT, namespace, name, count)
    _replace(BACKUP_VERIFY_OK, namespace, name, verify)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted resource."""
    with _lock:
        for metric, label_sets in _children.pop((namespace, name), {}).items():
            for labels in label_sets:
                metric.remove(*labels)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> Any:  # noqa: S104 - a pod port
    """Serve REGISTRY on http://addr:port/metrics in a daemon thread; returns the server
    (call `.shutdown()` to stop it)."""
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server
