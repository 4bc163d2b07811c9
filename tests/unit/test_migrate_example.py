"""examples/migrate-sqlite-job.yaml: the resource it carries validates, and the Job runs
`lokifi-storage migrate sqlite` on the file of its read-only volume with the URL from a Secret."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from typer.testing import CliRunner

from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "migrate-sqlite-job.yaml"


def _docs() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(EXAMPLE.read_text())}


def test_the_carried_resource_is_a_valid_lokifistorage() -> None:
    resource = yaml.safe_load(_docs()["ConfigMap"]["data"]["resource.yaml"])
    spec = LokifiStorageSpec.model_validate(resource["spec"])
    assert spec.postgres is not None
    assert spec.postgres.tables[0].partitionBy is not None


def test_the_job_runs_migrate_sqlite_on_its_volume_with_the_url_from_a_secret() -> None:
    pod = _docs()["Job"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert container["command"] == ["lokifi-storage"]
    shown = CliRunner().invoke(app, [*args, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "Copy every row of SQLITE_FILE" in shown.output
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    sqlite_file, resource_file = PurePosixPath(args[2]), PurePosixPath(args[4])
    assert sqlite_file.parent == PurePosixPath(mounts["sqlite"]["mountPath"])
    assert mounts["sqlite"]["readOnly"] is True
    assert resource_file.parent == PurePosixPath(mounts["config"]["mountPath"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == _docs()["ConfigMap"]["metadata"]["name"]
    assert resource_file.name in _docs()["ConfigMap"]["data"]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["LOKIFI_PRIMARY_URL"]["valueFrom"]
    assert not any("postgresql://" in a for a in args)
