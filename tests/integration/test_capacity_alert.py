"""The capacity part on the real primary: the alert fires at the threshold and clears below it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from lokifi_storage import metrics
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import MonitoringSpec
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.reconcile.capacity import reconcile_capacity
from stackfixtures import PgDatabase, StackEnv


def _size(db: PgDatabase) -> int:
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def _fill(db: PgDatabase, megabytes: int) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ballast (id int, pad text)")
        conn.execute(
            "INSERT INTO ballast SELECT g, repeat(md5(g::text), 30)"
            f" FROM generate_series(1, {megabytes * 1024 // 1})  g"
        )
        conn.execute("CHECKPOINT")


def _spec(capacity: int, threshold: int = 80) -> MonitoringSpec:
    return MonitoringSpec(capacity=str(capacity), alertThresholdPercent=threshold)


def test_the_alert_fires_when_the_database_grows_past_the_threshold_and_clears_after(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    capacity = int(_size(pg_database) / 0.70)  # 70% used now
    now = datetime.now(UTC)

    below = reconcile_capacity(_spec(capacity), pg_database, None, now)
    assert below.condition.status == "True"
    assert below.condition.reason == Reason.WITHIN_CAPACITY

    _fill(pg_database, megabytes=capacity // 1024 // 1024 // 8 + 1)  # ~+13% of capacity
    above = reconcile_capacity(
        _spec(capacity), pg_database, below.status.storage, now + timedelta(minutes=5)
    )
    assert above.condition.status == "False"
    assert above.condition.reason == Reason.CAPACITY_THRESHOLD_EXCEEDED
    assert "alert threshold of 80%" in above.condition.message
    assert status_json(above.status)["storage"]["usedPercent"] >= 80

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP TABLE ballast")
        conn.execute("CHECKPOINT")
    cleared = reconcile_capacity(
        _spec(capacity), pg_database, above.status.storage, now + timedelta(minutes=10)
    )
    assert cleared.condition.status == "True"
    assert status_json(cleared.status)["storage"]["usedPercent"] < 80


def test_exactly_at_the_threshold_the_alert_fires(stack: StackEnv, pg_database: PgDatabase) -> None:
    size = _size(pg_database)
    at = reconcile_capacity(_spec(size * 2, threshold=50), pg_database, None, datetime.now(UTC))
    # The size can only grow between the two reads (catalog caches), never shrink.
    assert at.condition.status == "False"
    assert status_json(at.status)["storage"]["usedPercent"] >= 50


def test_an_unchanged_database_gives_back_the_same_status_block_within_the_hour(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    spec = _spec(10 * 1024**3)
    now = datetime.now(UTC)
    first = reconcile_capacity(spec, pg_database, None, now)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE grows AS SELECT g FROM generate_series(1, 10000) g")
    again = reconcile_capacity(spec, pg_database, first.status.storage, now + timedelta(minutes=20))
    assert status_json(again.status) == status_json(first.status)
    assert again.condition == first.condition


def test_hourly_samples_build_the_growth_and_a_projected_full_date(
    stack: StackEnv, pg_database: PgDatabase
) -> None:
    spec = _spec(10 * 1024**3)
    start = datetime.now(UTC)
    report = reconcile_capacity(spec, pg_database, None, start, namespace="ns", name="cap")
    for hour in (1, 2):
        _fill(pg_database, megabytes=2)
        report = reconcile_capacity(
            spec,
            pg_database,
            report.status.storage,
            start + timedelta(hours=hour),
            namespace="ns",
            name="cap",
        )
    storage = status_json(report.status)["storage"]
    try:
        assert len(storage["samples"]) == 3
        assert storage["growthBytesPerDay"] > 0
        assert storage["projectedFullDate"] > start.date().isoformat()
        assert storage["largest"][0]["name"] == "public.ballast"
        assert metrics.DATABASE_BYTES.labels("ns", "cap")._value.get() == storage["databaseBytes"]
    finally:
        metrics.forget("ns", "cap")
