"""The shipped Grafana dashboard draws only series the operator documents (and so serves)."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _documented() -> set[str]:
    text = (DOCS / "metrics.md").read_text()
    return set(re.findall(r"^\| `(lokifi_storage_[a-z_]+)`", text, re.MULTILINE))


def _queries() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets") or []
    ]


def test_every_query_uses_documented_series_of_the_selected_resource() -> None:
    documented = _documented()
    queries = _queries()
    assert queries
    for expr in queries:
        names = set(re.findall(r"lokifi_storage_[a-z_]+", expr))
        base = {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}
        assert base <= documented, f"{expr}: {base - documented}"
        assert 'namespace="$namespace", name="$name"' in expr, expr


def test_the_dashboard_shows_the_series_the_issue_asks_for() -> None:
    used = {n for expr in _queries() for n in re.findall(r"lokifi_storage_[a-z_]+", expr)}
    for wanted in (
        "lokifi_storage_database_bytes",
        "lokifi_storage_partitions",
        "lokifi_storage_default_partition_rows",
        "lokifi_storage_replica_lag_seconds",
        "lokifi_storage_redis_cluster_state_ok",
        "lokifi_storage_backup_newest_age_seconds",
        "lokifi_storage_reconcile_duration_seconds_bucket",
        "lokifi_storage_reconcile_errors_total",
    ):
        assert wanted in used, wanted
