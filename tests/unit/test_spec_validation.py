"""The models refuse bad specs with a message that names the field and says the fix.

The same rules stand as CEL in the CRD (tests/e2e/test_crd_admission.py); these are the
operator's own check, which also covers what CEL cannot express (cron, where.equals types).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from lokifi_storage.api.redis_settings import setting_problem
from lokifi_storage.api.spec import LokifiStorageSpec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [
    REPO / "examples" / "lokifistorage-full.yaml",
    REPO / "examples" / "lokifistorage-minimal.yaml",
    REPO / "examples" / "local" / "lokifistorage.yaml",
]
FULL: dict[str, Any] = yaml.safe_load(EXAMPLES[0].read_text())["spec"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_shipped_examples_validate(example: Path) -> None:
    LokifiStorageSpec.model_validate(yaml.safe_load(example.read_text())["spec"])


def _table(spec: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = spec["postgres"]["tables"][0]
    return table


def _rule(spec: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = spec["objectStorage"]["buckets"][0]["lifecycle"][0]
    return rule


Breaker = Callable[[dict[str, Any]], None]

CASES: dict[str, tuple[Breaker, str, str]] = {
    "malicious table name": (
        lambda s: _table(s).update(name="ai_messages; DROP TABLE users"),
        "postgres.tables.0.name",
        "ai_messages; DROP TABLE users",
    ),
    "quoted identifier": (
        lambda s: _table(s)["partitionBy"].update(column='"created_at"'),
        "partitionBy.column",
        "created_at",
    ),
    "unknown interval": (
        lambda s: _table(s)["partitionBy"].update(interval="fortnight"),
        "partitionBy.interval",
        "month",
    ),
    "archive after compress": (
        lambda s: _table(s)["archive"].update(afterDays=800),
        "tables.0",
        "compressAfterDays",
    ),
    "compress after drop": (
        lambda s: _table(s)["archive"].update(compressAfterDays=3000),
        "tables.0",
        "dropAfterDays",
    ),
    "segment by the partition key": (
        lambda s: _table(s)["archive"].update(segmentBy=["user_id", "created_at"]),
        "tables.0",
        "archive.segmentBy must not contain partitionBy.column",
    ),
    "segment column twice": (
        lambda s: _table(s)["archive"].update(segmentBy=["user_id", "user_id"]),
        "archive",
        "lists user_id more than once",
    ),
    "unknown pack compression": (
        lambda s: _table(s)["archive"].update(packCompression="zstd"),
        "packCompression",
        "pglz",
    ),
    "duplicate tables": (
        lambda s: s["postgres"]["tables"].append(copy.deepcopy(_table(s))),
        "tables: public.ai_messages declared more than once",
        "merge the entries",
    ),
    "index with columns and full text": (
        lambda s: _table(s)["indexes"][1].update(columns=["content"]),
        "indexes.1",
        "fullText",
    ),
    "transition to STANDARD_IA after 10 days": (
        lambda s: _rule(s).update(transitions=[{"afterDays": 10, "storageClass": "STANDARD_IA"}]),
        "transitions.0",
        "30",
    ),
    "transitions out of order": (
        lambda s: _rule(s)["transitions"].reverse(),
        "lifecycle.0",
        "increasing",
    ),
    "duplicate rule ids": (
        lambda s: s["objectStorage"]["buckets"][0]["lifecycle"].append(copy.deepcopy(_rule(s))),
        "buckets.0.lifecycle",
        "ArchiveOldFiles",
    ),
    "redis dir": (
        lambda s: s["redis"]["settings"].update(dir="/var/lib/elsewhere"),
        "redis.settings",
        "dir",
    ),
    "bad cron": (
        lambda s: s["backups"]["schedules"][0].update(schedule="0 2 * *"),
        "backups.schedules.0.schedule",
        "5 fields",
    ),
    "bad capacity": (
        lambda s: s["monitoring"].update(capacity="1TB"),
        "monitoring.capacity",
        "Ti",
    ),
    "unknown field": (
        lambda s: s["postgres"].update(replicaz=[]),
        "postgres.replicaz",
        "Extra inputs",
    ),
    "where equals an object": (
        lambda s: s["postgres"]["tables"][1]["indexes"][0]["where"].update(equals={"a": 1}),
        "where.equals",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_spec_is_refused_naming_the_field_and_the_fix(case: str) -> None:
    breaks, field, hint = CASES[case]
    spec = copy.deepcopy(FULL)
    breaks(spec)

    with pytest.raises(ValidationError) as refused:
        LokifiStorageSpec.model_validate(spec)

    text = str(refused.value)
    assert field in text, text
    assert hint in text, text


@pytest.mark.parametrize(
    "key", ["dir", "dbfilename", "rename-command", "save", "requirepass", "masterauth", "include"]
)
def test_dangerous_redis_settings_are_never_allowed(key: str) -> None:
    problem = setting_problem(key, "x")
    assert problem is not None
    assert key in problem


def test_allowed_redis_settings_check_their_values() -> None:
    assert setting_problem("maxmemory-policy", "allkeys-lru") is None
    assert setting_problem("maxmemory", "2gb") is None
    assert setting_problem("maxmemory-policy", "random") is not None
    assert setting_problem("maxmemory", "lots") is not None
