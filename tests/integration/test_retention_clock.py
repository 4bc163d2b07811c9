"""Retention runs on the database server's clock, never on the pod's (path 7).

The export job is run as a real process whose clock is really 60 days fast (libfaketime,
Debian's `faketime` package, preloaded into it), against a partition that is one day old by
the server's clock and past `dropAfterDays: 30` by the fast one. The reconcile is given a fast
clock reading the same way the operator's own clock reaches it.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from partitionkit import (
    create_messages_table,
    fingerprint,
    insert_messages,
    jobs_env,
    partition_db,
    partitions_of,
    query,
    table_spec,
)

from lokifi_storage.api.spec import PostgresSpec, TableSpec
from lokifi_storage.reconcile.partitions import reconcile_partitions, reconcile_tables
from stackfixtures import PgDatabase, StackEnv

CLI = Path(sys.executable).with_name("lokifi-storage")
FAST = dt.timedelta(days=60)


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is missing: scripts/install.sh installs Debian's faketime")
    return found[0]


def _server_now(url: str) -> dt.datetime:
    moment: dt.datetime = query(url, "SELECT now()")[0][0]
    return moment


def _one_day_old_partition(url: str, spec: TableSpec) -> tuple[str, dt.datetime]:
    """Yesterday's partition (by the server's clock), holding rows; its name and `now()`."""
    create_messages_table(url, with_default=True)
    now = _server_now(url)
    yesterday = dt.datetime.combine(now.date() - dt.timedelta(days=1), dt.time(), dt.UTC)
    insert_messages(url, yesterday, yesterday + dt.timedelta(hours=23), 300)
    with partition_db(url) as db:
        outcome = reconcile_tables(db, [spec], now)
    assert not outcome.failures, outcome.failures
    name = f"ai_messages_p{yesterday:%Y_%m_%d}"
    assert name in dict(partitions_of(url, "ai_messages"))
    return name, now


def _daily(**retention: Any) -> TableSpec:
    return table_spec(
        partitionBy={"column": "created_at", "interval": "day"},
        premake=2,
        retention={"dropAfterDays": 30, **retention},
    )


def test_export_job_on_a_fast_clock_exports_and_drops_nothing(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = _daily(exportTo={"bucket": s3_bucket, "storageClass": "STANDARD"})
    name, server_now = _one_day_old_partition(pg_database, spec)
    before = fingerprint(pg_database, "ai_messages")
    env = {
        **os.environ,
        **jobs_env(pg_database, spec, stack),
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME": f"+{FAST.days}d",
    }
    # The process's clock really is 60 days ahead.
    shown = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert float(shown.stdout) - server_now.timestamp() > FAST.total_seconds() - 3600

    result = subprocess.run(
        [str(CLI), "partitions", "export"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ahead of the database server's" in result.stderr
    assert "nothing is exported or dropped" in result.stderr
    assert name in dict(partitions_of(pg_database, "ai_messages"))
    assert fingerprint(pg_database, "ai_messages") == before
    assert stack.s3_client().list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_reconcile_on_a_fast_clock_drops_nothing_and_says_so(pg_database: PgDatabase) -> None:
    spec = _daily(dropWithoutExport=True)
    name, server_now = _one_day_old_partition(pg_database, spec)
    before = fingerprint(pg_database, "ai_messages")
    postgres = PostgresSpec.model_validate(
        {
            "primary": {"secretRef": {"name": "db", "key": "url"}},
            "tables": [spec.model_dump(by_alias=True, exclude_none=True)],
        }
    )

    report = reconcile_partitions(postgres, pg_database, now=server_now + FAST)

    assert name in dict(partitions_of(pg_database, "ai_messages"))
    assert fingerprint(pg_database, "ai_messages") == before
    assert (report.condition.status, report.condition.reason) == ("False", "ClockSkew")
    assert "nothing is exported or dropped" in report.condition.message
    # With agreeing clocks the day-old partition is simply young: kept, and all is well.
    report = reconcile_partitions(postgres, pg_database, now=server_now)
    assert report.condition.status == "True", report.condition.message
    assert name in dict(partitions_of(pg_database, "ai_messages"))
