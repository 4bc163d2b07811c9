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

The series are defined in metrics/series.py and set by metrics/record.py; this package's root
is what the rest of the operator imports (`from lokifi_storage import metrics`).
"""

from __future__ import annotations

from lokifi_storage.metrics.record import (
    forget,
    observe_part,
    record_status,
    set_resync_interval,
    set_shards_held,
    set_storage,
)
from lokifi_storage.metrics.series import (
    BACKUP_COUNT,
    BACKUP_LAST_SIZE,
    BACKUP_LAST_SUCCESS,
    BACKUP_VERIFY_OK,
    CAPACITY_ALERT_THRESHOLD_RATIO,
    CAPACITY_BYTES,
    CAPACITY_USED_RATIO,
    CONDITION,
    DATABASE_BYTES,
    DEFAULT_PARTITION_ROWS,
    GROWTH_BYTES_PER_DAY,
    PARTITIONS,
    PROJECTED_FULL_TIMESTAMP,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILES,
    REDIS_CLUSTER_STATE_OK,
    REDIS_NODES,
    REDIS_SLOTS,
    REGISTRY,
    RELATION_BYTES,
    REPLICA_HEALTHY,
    REPLICA_LAG_SECONDS,
    RESYNC_INTERVAL,
    SHARDS_HELD,
    start_metrics_server,
)

__all__ = [
    "BACKUP_COUNT",
    "BACKUP_LAST_SIZE",
    "BACKUP_LAST_SUCCESS",
    "BACKUP_VERIFY_OK",
    "CAPACITY_ALERT_THRESHOLD_RATIO",
    "CAPACITY_BYTES",
    "CAPACITY_USED_RATIO",
    "CONDITION",
    "DATABASE_BYTES",
    "DEFAULT_PARTITION_ROWS",
    "GROWTH_BYTES_PER_DAY",
    "PARTITIONS",
    "PROJECTED_FULL_TIMESTAMP",
    "RECONCILES",
    "RECONCILE_DURATION",
    "RECONCILE_ERRORS",
    "REDIS_CLUSTER_STATE_OK",
    "REDIS_NODES",
    "REDIS_SLOTS",
    "REGISTRY",
    "RELATION_BYTES",
    "REPLICA_HEALTHY",
    "REPLICA_LAG_SECONDS",
    "RESYNC_INTERVAL",
    "SHARDS_HELD",
    "forget",
    "observe_part",
    "record_status",
    "set_resync_interval",
    "set_shards_held",
    "set_storage",
    "start_metrics_server",
]
