"""RFC 3339 times: always UTC with a `Z`, whatever zone the datetime was made in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lokifi_storage.api.spec import BackupScheduleSpec
from lokifi_storage.api.timestamps import rfc3339
from lokifi_storage.domain.backup_catalog import (
    ListedObject,
    catalog,
    dump_key,
    format_stamp,
    manifest_key,
)
from lokifi_storage.domain.backup_health import assess_backups

BERLIN_SUMMER = timezone(timedelta(hours=2))
MOMENT = datetime(2026, 7, 1, 14, 30, 5, 123456, tzinfo=BERLIN_SUMMER)


@pytest.mark.parametrize(
    ("precision", "text"),
    [
        ("seconds", "2026-07-01T12:30:05Z"),
        ("milliseconds", "2026-07-01T12:30:05.123Z"),
        ("microseconds", "2026-07-01T12:30:05.123456Z"),
    ],
)
def test_a_time_in_another_zone_is_written_as_utc(precision: str, text: str) -> None:
    assert rfc3339(MOMENT, precision) == text  # type: ignore[arg-type]


def test_a_utc_time_keeps_its_hours() -> None:
    assert rfc3339(datetime(2026, 1, 31, 12, 0, tzinfo=UTC)) == "2026-01-31T12:00:00Z"


def test_backup_status_times_are_utc_when_the_store_reports_another_zone() -> None:
    """An S3 server may report Last-Modified in its own zone; the status must not keep its hours
    under a `Z` (it used to: 14:40 in +02:00 became `14:40:00Z`, two hours in the future)."""
    started = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    done = datetime(2026, 7, 1, 14, 40, tzinfo=BERLIN_SUMMER)
    stamp = format_stamp(started)
    dump = ListedObject(dump_key("b/", "p", "daily", stamp, "zstd"), 4096, done)
    manifest = ListedObject(manifest_key("b/", "p", "daily", stamp), 100, done)
    runs = catalog("b/", "p", [dump, manifest])
    daily = BackupScheduleSpec(name="daily", schedule="0 2 * * *", keep=7)
    health = assess_backups([daily], runs, datetime(2026, 7, 1, 13, 0, tzinfo=UTC))
    assert health.statuses[0].lastSuccessfulTime == "2026-07-01T12:40:00Z"
