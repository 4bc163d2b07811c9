"""Every series the operator exposes, in one registry: names, help texts and labels.

The definitions are kept apart from the code that sets them (metrics/record.py) so that
docs/metrics.md and the dashboards can be checked against one list, and a series is defined
exactly once whoever feeds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
BASE_LABELS = ("namespace", "name")
# Held while series of a resource change, and while the backup age is computed from them.
LOCK = threading.Lock()

DATABASE_BYTES = Gauge(
    "lokifi_storage_database_bytes",
    "Size of the primary's database (pg_database_size), measured at the last reconcile.",
    BASE_LABELS,
    registry=REGISTRY,
)
CAPACITY_BYTES = Gauge(
    "lokifi_storage_capacity_bytes",
    "spec.monitoring.capacity in bytes.",
    BASE_LABELS,
    registry=REGISTRY,
)
CAPACITY_USED_RATIO = Gauge(
    "lokifi_storage_capacity_used_ratio",
    "database_bytes / capacity_bytes (0..1; above 1 when over capacity).",
    BASE_LABELS,
    registry=REGISTRY,
)
CAPACITY_ALERT_THRESHOLD_RATIO = Gauge(
    "lokifi_storage_capacity_alert_threshold_ratio",
    "spec.monitoring.alertThresholdPercent / 100.",
    BASE_LABELS,
    registry=REGISTRY,
)
GROWTH_BYTES_PER_DAY = Gauge(
    "lokifi_storage_growth_bytes_per_day",
    "Least-squares growth of the database over the recorded samples.",
    BASE_LABELS,
    registry=REGISTRY,
)
PROJECTED_FULL_TIMESTAMP = Gauge(
    "lokifi_storage_projected_full_timestamp_seconds",
    "Unix time the capacity is projected to be reached (absent when not growing).",
    BASE_LABELS,
    registry=REGISTRY,
)
RELATION_BYTES = Gauge(
    "lokifi_storage_relation_bytes",
    "Size of the largest tables and partitions (heap, indexes, TOAST).",
    (*BASE_LABELS, "relation"),
    registry=REGISTRY,
)
PARTITIONS = Gauge(
    "lokifi_storage_partitions",
    "Partitions of a managed table, by state (live: attached to the table; archived; "
    "pending_compress / pending_export: waiting for the partitions Jobs).",
    (*BASE_LABELS, "table", "state"),
    registry=REGISTRY,
)
DEFAULT_PARTITION_ROWS = Gauge(
    "lokifi_storage_default_partition_rows",
    "Rows in the table's DEFAULT partition (rows no range partition covers).",
    (*BASE_LABELS, "table"),
    registry=REGISTRY,
)
REPLICA_LAG_SECONDS = Gauge(
    "lokifi_storage_replica_lag_seconds",
    "Replication lag of a read replica, in seconds.",
    (*BASE_LABELS, "replica"),
    registry=REGISTRY,
)
REPLICA_HEALTHY = Gauge(
    "lokifi_storage_replica_healthy",
    "1 when the replica is named in the connection Secret, else 0.",
    (*BASE_LABELS, "replica"),
    registry=REGISTRY,
)
REDIS_CLUSTER_STATE_OK = Gauge(
    "lokifi_storage_redis_cluster_state_ok",
    "1 when CLUSTER INFO reports cluster_state:ok, else 0.",
    BASE_LABELS,
    registry=REGISTRY,
)
REDIS_SLOTS = Gauge(
    "lokifi_storage_redis_slots",
    "Hash slots by state (assigned, ok, fail) as CLUSTER INFO reports them.",
    (*BASE_LABELS, "state"),
    registry=REGISTRY,
)
REDIS_NODES = Gauge(
    "lokifi_storage_redis_nodes",
    "Redis Cluster nodes by role (master, replica).",
    (*BASE_LABELS, "role"),
    registry=REGISTRY,
)
BACKUP_LAST_SUCCESS = Gauge(
    "lokifi_storage_backup_last_success_timestamp_seconds",
    "Unix time the newest complete backup of the schedule was finished.",
    (*BASE_LABELS, "schedule"),
    registry=REGISTRY,
)
BACKUP_LAST_SIZE = Gauge(
    "lokifi_storage_backup_last_size_bytes",
    "Stored (compressed) size of the newest backup of the schedule.",
    (*BASE_LABELS, "schedule"),
    registry=REGISTRY,
)
BACKUP_COUNT = Gauge(
    "lokifi_storage_backups",
    "Complete backups of the schedule in the bucket.",
    (*BASE_LABELS, "schedule"),
    registry=REGISTRY,
)
BACKUP_VERIFY_OK = Gauge(
    "lokifi_storage_backup_last_verify_ok",
    "1 when the schedule's most recent restore verification passed, 0 when it failed.",
    (*BASE_LABELS, "schedule"),
    registry=REGISTRY,
)
CONDITION = Gauge(
    "lokifi_storage_condition",
    "1 for the current status and reason of each condition type.",
    (*BASE_LABELS, "type", "status", "reason"),
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "lokifi_storage_reconcile_duration_seconds",
    "Time one part's observe-plan-apply-report took.",
    (*BASE_LABELS, "part"),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
RECONCILES = Counter(
    "lokifi_storage_reconciles",
    "Reconciles of a part (successful or not).",
    (*BASE_LABELS, "part"),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "lokifi_storage_reconcile_errors",
    "Reconciles of a part that ended with its condition False, by reason.",
    (*BASE_LABELS, "part", "reason"),
    registry=REGISTRY,
)


def _backup_age_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "lokifi_storage_backup_newest_age_seconds",
        "Seconds since the newest complete backup of the schedule finished.",
        labels=[*BASE_LABELS, "schedule"],
    )


class _BackupAgeCollector(Collector):
    """`lokifi_storage_backup_newest_age_seconds`, computed when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = _backup_age_family()
        now = time.time()
        with LOCK:
            samples = [s for m in BACKUP_LAST_SUCCESS.collect() for s in m.samples]
        for sample in samples:
            labels = sample.labels
            family.add_metric(
                [labels["namespace"], labels["name"], labels["schedule"]], now - sample.value
            )
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [_backup_age_family()]


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


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> Any:  # noqa: S104 - a pod port
    """Serve REGISTRY on http://addr:port/metrics in a daemon thread; returns the server
    (call `.shutdown()` to stop it)."""
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server
