"""The capacity part (`spec.monitoring`): measure, keep a sample history, judge, report.

Observe: pg_database_size and the largest relations on the primary. Plan: domain/capacity.py
(record a sample at most hourly, growth by least squares, projected full date, the alert).
Report: CapacityOK, False with CapacityThresholdExceeded at or above alertThresholdPercent
(the resource reconciler posts the Warning event when it turns False), True with
WithinCapacity below it.

The history lives in `status.storage.samples` (bounded: domain/capacity.MAX_SAMPLES), so it
survives operator restarts without a ConfigMap. `previous` is the current status.storage.

Writes nothing when nothing changed: status.storage and the condition's message are rebuilt
only when a sample is recorded, the capacity changes, or the alert flips; in between the same
block comes back, so the resource reconciler has nothing to patch. The live numbers go to the
metrics every time.
"""

from __future__ import annotations

from datetime import datetime

from lokifi_storage import metrics
from lokifi_storage.api import conditions as types
from lokifi_storage.api.spec import LokifiStorageSpec, MonitoringSpec
from lokifi_storage.api.status import (
    LokifiStorageStatus,
    RelationSize,
    StorageSample,
    StorageStatus,
    judged,
)
from lokifi_storage.api.timestamps import parse_rfc3339, rfc3339
from lokifi_storage.clients.postgres.sizes import measure_sizes
from lokifi_storage.domain.capacity import Sample, assess, record_sample
from lokifi_storage.reconcile.parts import Part, PartContext
from lokifi_storage.reconcile.report import PartReport

__all__ = ["PART", "CapacityPart", "reconcile_capacity"]

TOP_RELATIONS = 5


def _parse_time(text: str) -> datetime | None:
    try:
        return parse_rfc3339(text)
    except ValueError:
        return None


def _samples(previous: StorageStatus | None) -> list[Sample]:
    if previous is None:
        return []
    samples = []
    for item in previous.samples:
        at = _parse_time(item.time)
        if at is not None:
            samples.append(Sample(at, item.bytes))
    return samples


def reconcile_capacity(
    spec: MonitoringSpec,
    primary_url: str,
    previous: StorageStatus | None,
    now: datetime,
    *,
    namespace: str | None = None,
    name: str | None = None,
) -> PartReport:
    """One capacity pass. `namespace`/`name` label the metrics (none set when omitted)."""
    capacity = spec.capacity_bytes  # parsed and checked positive by the spec's validator
    threshold = spec.alertThresholdPercent
    before = previous

    observed = measure_sizes(primary_url, top=TOP_RELATIONS)
    history, recorded = record_sample(_samples(before), Sample(now, observed.database_bytes))
    live = assess(now, observed.database_bytes, capacity, threshold, history)
    if namespace is not None and name is not None:
        metrics.set_storage(
            namespace,
            name,
            database_bytes=observed.database_bytes,
            capacity_bytes=capacity,
            threshold_percent=threshold,
            growth_bytes_per_day=live.growth_bytes_per_day,
            projected_full=live.projected_full,
            largest=dict(observed.largest),
        )

    if (
        not recorded
        and before is not None
        and before.databaseBytes is not None
        and before.sampledAt is not None
        and before.capacityBytes == capacity
    ):
        sampled_at = _parse_time(before.sampledAt) or now
        shown = assess(sampled_at, before.databaseBytes, capacity, threshold, _samples(before))
        if shown.exceeded == live.exceeded:
            # Hand back the block exactly as it is in .status: nothing to patch.
            return _condition_report(shown.exceeded, shown.reason, shown.message, before)
    # Something worth writing: a new sample, a new capacity, or the alert flipped.
    status = StorageStatus(
        databaseBytes=observed.database_bytes,
        capacityBytes=capacity,
        usedPercent=live.used_percent,
        growthBytesPerDay=live.growth_bytes_per_day,
        projectedFullDate=live.projected_full.isoformat() if live.projected_full else None,
        sampledAt=rfc3339(now),
        largest=[RelationSize(name=n, bytes=b) for n, b in observed.largest],
        samples=[StorageSample(time=rfc3339(s.at), bytes=s.bytes) for s in history],
    )
    return _condition_report(live.exceeded, live.reason, live.message, status)


def _condition_report(
    exceeded: bool, reason: str, message: str, storage: StorageStatus
) -> PartReport:
    return PartReport(
        condition=judged(types.CAPACITY_OK, not exceeded, reason, message),
        status=LokifiStorageStatus(storage=storage),
    )


class CapacityPart:
    """spec.monitoring: CapacityOK and status.storage, the live sizes in the metrics."""

    name = "capacity"
    conditions = (types.CAPACITY_OK,)
    status_keys = ("storage",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.monitoring is not None and spec.postgres is not None

    def run(self, ctx: PartContext) -> list[PartReport]:
        postgres, monitoring = ctx.spec.postgres, ctx.spec.monitoring
        assert postgres is not None
        assert monitoring is not None
        report = reconcile_capacity(
            monitoring,
            ctx.secrets.value(postgres.primary.secretRef),
            ctx.status.storage,
            ctx.now,
            namespace=ctx.namespace,
            name=ctx.name,
        )
        return [report]

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []  # it only measures

    def release(self, ctx: PartContext) -> list[str]:
        return []  # it claims nothing


PART: Part = CapacityPart()
