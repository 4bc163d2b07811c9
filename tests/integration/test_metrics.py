"""The metrics endpoint: a real HTTP server on a loopback port serves every documented series."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lokifi_storage import metrics
from lokifi_storage.api.status import LokifiStorageStatus

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def endpoint() -> Iterator[str]:
    port = _free_port()
    server = metrics.start_metrics_server(port, addr="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        metrics.forget("ns", "lks")


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - loopback http
        text = reply.read().decode()
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((sample.labels, sample.value))
    return series


def _ours(labels: dict[str, str]) -> bool:
    return labels.get("namespace") == "ns" and labels.get("name") == "lks"


def _documented() -> set[str]:
    return set(re.findall(r"^\| `(lokifi_storage_[a-z_]+)`", DOC.read_text(), re.MULTILINE))


def _full_status(finished: datetime) -> LokifiStorageStatus:
    return LokifiStorageStatus.model_validate(
        {
            "partitions": [
                {
                    "table": "ai_messages",
                    "count": 15,
                    "archived": 12,
                    "inDefault": 3,
                    "pendingExport": 2,
                }
            ],
            "replicas": [{"name": "replica-1", "healthy": True, "lagSeconds": 0.4}],
            "redis": {
                "clusterState": "ok",
                "slotsAssigned": 16384,
                "slotsOk": 16384,
                "slotsFail": 0,
                "masters": 3,
                "replicas": 3,
            },
            "backups": [
                {
                    "schedule": "daily",
                    "lastSuccessfulTime": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "lastSizeBytes": 4096,
                    "count": 7,
                    "lastVerifyResult": "Passed",
                }
            ],
            "conditions": [
                {"type": "CapacityOK", "status": "False", "reason": "CapacityThresholdExceeded"}
            ],
        }
    )


def test_the_endpoint_serves_every_documented_series(endpoint: str) -> None:
    finished = datetime.now(UTC) - timedelta(hours=3)
    metrics.record_status("ns", "lks", _full_status(finished))
    metrics.set_storage(
        "ns",
        "lks",
        database_bytes=800,
        capacity_bytes=1000,
        threshold_percent=80,
        growth_bytes_per_day=10.0,
        projected_full=date(2030, 1, 1),
        largest={"public.ai_messages_2025_01": 500},
    )
    metrics.observe_part("ns", "lks", "backups", 0.2, ok=False, reason="BackupStale")

    scraped = _scrape(endpoint)

    exposed = {
        name.removesuffix("_bucket")
        .removesuffix("_count")
        .removesuffix("_sum")
        .removesuffix("_created")
        for name in scraped
    }
    missing = sorted(_documented() - exposed)
    assert not missing, f"documented but not served: {missing}"
    # The registry is the process's: other tests' resources may have series of their own.
    scraped = {
        name: [(labels, value) for labels, value in samples if _ours(labels)]
        for name, samples in scraped.items()
    }
    ((labels, age),) = scraped["lokifi_storage_backup_newest_age_seconds"]
    assert labels == {"namespace": "ns", "name": "lks", "schedule": "daily"}
    assert 3 * 3600 - 5 < age < 3 * 3600 + 60
    assert scraped["lokifi_storage_capacity_used_ratio"] == [
        ({"namespace": "ns", "name": "lks"}, 0.8)
    ]
    partitions = {lab["state"]: v for lab, v in scraped["lokifi_storage_partitions"]}
    assert partitions == {
        "live": 15.0,
        "archived": 12.0,
        "pending_compress": 0.0,
        "pending_export": 2.0,
    }
    errors = scraped["lokifi_storage_reconcile_errors_total"]
    assert errors == [
        ({"namespace": "ns", "name": "lks", "part": "backups", "reason": "BackupStale"}, 1.0)
    ]


def test_every_served_series_is_documented(endpoint: str) -> None:
    metrics.record_status("ns", "lks", _full_status(datetime.now(UTC)))
    metrics.observe_part("ns", "lks", "redis", 0.1, ok=True)
    metrics.set_storage("ns", "lks", database_bytes=1, capacity_bytes=2)
    documented = _documented()
    served = {
        re.sub(r"_(bucket|count|sum|created)$", "", name)
        for name in _scrape(endpoint)
        if name.startswith("lokifi_storage_")
    }
    # A counter's `_created` sample belongs to the documented `_total` series.
    undocumented = {n for n in served if n not in documented and f"{n}_total" not in documented}
    assert not undocumented


def test_a_removed_table_and_a_deleted_resource_disappear_from_the_endpoint(
    endpoint: str,
) -> None:
    metrics.record_status("ns", "lks", _full_status(datetime.now(UTC)))
    metrics.record_status("ns", "lks", LokifiStorageStatus(partitions=[]))
    # The registry is the process's: other tests' resources may have series of their own.
    ours = {
        name
        for name, samples in _scrape(endpoint).items()
        if any(_ours(labels) for labels, _ in samples)
    }
    assert "lokifi_storage_partitions" not in ours
    assert "lokifi_storage_replica_lag_seconds" in ours

    metrics.forget("ns", "lks")

    remaining = [
        labels
        for samples in _scrape(endpoint).values()
        for labels, _ in samples
        if labels.get("name") == "lks"
    ]
    assert remaining == []
