"""The shipped alerting rules: the plain rules file and the chart's PrometheusRule are the same
groups, promtool accepts them, and `promtool test rules` fires each alert, and only it, on the
series the operator's own exporter serves for a bad state (and none for a healthy one).

The input series are not typed by hand: each scenario sets the operator's state through the
functions the reconciler calls (metrics.record_status / set_storage), scrapes metrics.REGISTRY
as Prometheus would, and feeds those exact names, labels and values to promtool. A rule that
names a series or a label the operator does not serve cannot pass.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helmchart import CHART, by_kind, one, render
from lokifi_storage import metrics
from lokifi_storage.api.status import LokifiStorageStatus
from stackfixtures import REPO

RULES = REPO / "deploy" / "prometheus" / "lokifi-storage-rules.yaml"
CHART_RULES = CHART / "files" / "prometheus-rules.yaml"
NS, NAME = "lokifi", "lokifi-prod"


def _promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(found).exists():
        pytest.fail("promtool not found: scripts/install.sh installs Debian's prometheus package")
    return found


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_chart_ships_the_plain_rules_file_and_only_when_asked(tmp_path: Path) -> None:
    assert CHART_RULES.read_text() == RULES.read_text(), (
        "charts/lokifi-storage-operator/files/prometheus-rules.yaml differs from "
        "deploy/prometheus/lokifi-storage-rules.yaml: copy it"
    )
    assert by_kind(render(tmp_path, crds=False), "PrometheusRule") == []
    rule = one(
        render(tmp_path, {"prometheusRule": {"enabled": True, "labels": {"release": "kp"}}}),
        "PrometheusRule",
    )
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert rule["metadata"]["labels"]["release"] == "kp"
    assert rule["metadata"]["namespace"] == "lokifi-system"


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


# --- the operator's series for a state ------------------------------------------------------


def _condition(kind: str, status: str, reason: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": ""}


HEALTHY: dict[str, Any] = {
    "partitions": [{"table": "ai_messages", "count": 5, "archived": 2, "inDefault": 0}],
    "replicas": [{"name": "replica-1", "healthy": True, "lagSeconds": 0.0}],
    "redis": {"clusterState": "ok", "slotsAssigned": 16384, "slotsOk": 16384, "masters": 3},
    "backups": [
        {
            "schedule": "daily",
            "lastSuccessfulTime": "1970-01-01T00:00:00Z",
            "count": 3,
            "lastVerifyResult": "Passed",
        }
    ],
    "conditions": [
        _condition("PartitionsReady", "True", "Reconciled"),
        _condition("BackupsReady", "True", "BackupsCurrent"),
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**HEALTHY, **changes}


def _storage(used: float, projected: date | None = None) -> Callable[[], None]:
    def apply() -> None:
        metrics.set_storage(
            NS,
            NAME,
            database_bytes=int(used * 1000),
            capacity_bytes=1000,
            threshold_percent=80,
            growth_bytes_per_day=10.0,
            projected_full=projected,
        )

    return apply


def _served(status: dict[str, Any], storage: Callable[[], None]) -> list[str]:
    """promtool input_series lines (`name{labels}` -> value) of what the exporter serves."""
    metrics.record_status(NS, NAME, LokifiStorageStatus.model_validate(status))
    storage()
    try:
        text = generate_latest(metrics.REGISTRY).decode()
    finally:
        metrics.forget(NS, NAME)
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("namespace") != NS or sample.name.endswith(
                ("_bucket", "_count", "_sum", "_created", "_total")
            ):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out.append(f"{sample.name}{{{labels}}}={sample.value!r}")
    return out


def _input(series: list[str], samples: int) -> list[dict[str, str]]:
    return [
        {"series": line.rpartition("=")[0], "values": f"{line.rpartition('=')[2]}x{samples}"}
        for line in series
    ]


BASE = {"namespace": NS, "name": NAME}


SCENARIOS: list[
    tuple[str, dict[str, Any], Callable[[], None], dict[str, str], dict[str, str], str]
] = [
    (
        "LokifiStorageCapacityOverThreshold",
        HEALTHY,
        _storage(0.85),
        {"severity": "warning"},
        {
            "summary": f"{NS}/{NAME}: database over its capacity alert threshold",
            "description": "The database uses 85% of spec.monitoring.capacity. "
            "See CapacityThresholdExceeded in docs/operations.md.",
        },
        "1m",
    ),
    (
        "LokifiStorageCapacityFullSoon",
        HEALTHY,
        _storage(0.5, date(1970, 1, 10)),
        {"severity": "warning"},
        {
            "summary": f"{NS}/{NAME}: database projected to reach its capacity within 14 days",
            "description": "At the measured growth the database reaches "
            "spec.monitoring.capacity in 8d 20h 0m 0s.",
        },
        "1m",
    ),
    (
        "LokifiStorageBackupTooOld",
        _with(conditions=[_condition("BackupsReady", "False", "BackupStale")]),
        _storage(0.5),
        {
            "severity": "critical",
            "type": "BackupsReady",
            "status": "False",
            "reason": "BackupStale",
        },
        {
            "summary": f"{NS}/{NAME}: last good backup older than its schedule allows "
            "(BackupStale)",
            "description": "A schedule's newest complete backup is older than twice its "
            f"interval, or it never produced one. kubectl describe lks {NAME}; see BackupStale "
            "in docs/operations.md.",
        },
        "1m",
    ),
    (
        "LokifiStorageBackupVerifyFailed",
        _with(backups=[{"schedule": "daily", "count": 3, "lastVerifyResult": "Failed"}]),
        _storage(0.5),
        {"severity": "critical", "schedule": "daily"},
        {
            "summary": f"{NS}/{NAME}: restore verification of the daily backup failed",
            "description": "The newest verified backup of schedule daily did not restore with "
            "the row counts of its manifest. See VerifyFailed in docs/operations.md.",
        },
        "1m",
    ),
    (
        "LokifiStorageReplicaOutOfSecret",
        _with(replicas=[{"name": "replica-1", "healthy": False, "reason": "ReplicaLagging"}]),
        _storage(0.5),
        {"severity": "warning", "replica": "replica-1"},
        {
            "summary": f"{NS}/{NAME}: replica replica-1 left out of the connection Secret",
            "description": "The replica is unreachable, not in recovery or lagging beyond "
            "maxLagSeconds, so the application reads from the others. See ReplicasReady in "
            "docs/operations.md.",
        },
        "1m",
    ),
    (
        "LokifiStorageRedisClusterNotOk",
        _with(redis={"clusterState": "fail", "slotsAssigned": 16384, "slotsOk": 10000}),
        _storage(0.5),
        {"severity": "critical"},
        {
            "summary": f"{NS}/{NAME}: Redis Cluster state is not ok",
            "description": "CLUSTER INFO reports cluster_state other than ok: some hash slots "
            "are not served. See ClusterNotOk in docs/operations.md.",
        },
        "1m",
    ),
    (
        "LokifiStoragePartitionsNotPremade",
        _with(conditions=[_condition("PartitionsReady", "False", "LockTimeout")]),
        _storage(0.5),
        {
            "severity": "warning",
            "type": "PartitionsReady",
            "status": "False",
            "reason": "LockTimeout",
        },
        {
            "summary": f"{NS}/{NAME}: partitions not kept ahead (LockTimeout)",
            "description": "PartitionsReady has been False for 30 minutes: partitions are not "
            "premade, archived or dropped as declared. "
            f"kubectl lks plan {NAME} shows what is pending.",
        },
        "1m",
    ),
    (
        "LokifiStorageRowsPilingInDefault",
        _with(partitions=[{"table": "ai_messages", "count": 5, "inDefault": 42}]),
        _storage(0.5),
        {"severity": "warning", "table": "ai_messages"},
        {
            "summary": f"{NS}/{NAME}: 42 rows in the DEFAULT partition of ai_messages",
            "description": "Rows no range partition covers have stayed in DEFAULT for an hour; "
            "the operator moves them when it creates their partition. Check PartitionsReady.",
        },
        "1m",
    ),
    (
        "LokifiStorageExportFailing",
        _with(partitions=[{"table": "ai_messages", "count": 5, "pendingExport": 3}]),
        _storage(0.5),
        {"severity": "warning", "table": "ai_messages", "state": "pending_export"},
        {
            "summary": f"{NS}/{NAME}: 3 expired partitions of ai_messages not exported for 2 days",
            "description": "The partitions export CronJob (daily) has not exported and "
            "dropped them: kubectl logs of its last Job; see ExportFailed in "
            "docs/operations.md.",
        },
        "2d",
    ),
]


def test_every_shipped_alert_has_a_scenario() -> None:
    assert sorted(a["alert"] for a in _alerts()) == sorted(s[0] for s in SCENARIOS)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    metrics.forget(NS, NAME)
    yield
    metrics.forget(NS, NAME)


def _run(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(RULES.read_text())
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    return subprocess.run(
        [_promtool(), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.usefixtures("clean_registry")
def test_promtool_fires_each_alert_on_the_operators_series_and_none_when_healthy(
    tmp_path: Path,
) -> None:
    names = [a["alert"] for a in _alerts()]
    tests = []
    for alert, status, storage, labels, notes, horizon in SCENARIOS:
        # One sample a minute (Prometheus forgets a series not sampled for 5 minutes); the
        # two-day alert needs more than two days of them.
        samples = 3400 if horizon == "2d" else 300
        eval_time = "55h" if horizon == "2d" else "4h"
        served = _served(status, storage)
        tests.append(
            {
                "interval": "1m",
                "input_series": _input(served, samples),
                "alert_rule_test": [
                    {
                        "eval_time": eval_time,
                        "alertname": name,
                        "exp_alerts": [{"exp_labels": {**BASE, **labels}, "exp_annotations": notes}]
                        if name == alert
                        else [],
                    }
                    for name in names
                ],
            }
        )
    healthy = _served(HEALTHY, _storage(0.5))
    tests.append(
        {
            "interval": "1m",
            "input_series": _input(healthy, 3400),
            "alert_rule_test": [
                {"eval_time": "55h", "alertname": name, "exp_alerts": []} for name in names
            ],
        }
    )
    result = _run(tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr
