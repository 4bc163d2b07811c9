"""What the CronJobs run is a command line this project's CLI accepts, with the credentials
in the environment variables the CLI reads: the builders and the CLI cannot drift apart."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer

from lokifi_storage.api.spec import LokifiStorageSpec, TableSpec
from lokifi_storage.builders.cronjobs import JobSettings, desired_cronjobs
from lokifi_storage.builders.labels import Owner
from lokifi_storage.cli import app
from lokifi_storage.domain.job_env import PRIMARY_URL_ENV

SPEC = LokifiStorageSpec.model_validate(
    {
        "postgres": {
            "primary": {"secretRef": {"name": "lokifi-db", "key": "url"}},
            "tables": [
                {
                    "name": "ai_messages",
                    "partitionBy": {"column": "created_at", "interval": "month"},
                    "archive": {"afterDays": 365, "schema": "archive", "compressAfterDays": 730},
                    "retention": {
                        "dropAfterDays": 2555,
                        "exportTo": {"bucket": "lokifi-archive"},
                    },
                },
                {"name": "ai_threads"},
            ],
        },
        "objectStorage": {
            "endpoint": "https://s3.example",
            "region": "eu-west-1",
            "credentialsSecretRef": {"name": "lokifi-s3"},
        },
        "backups": {
            "bucket": "lokifi-backups",
            "verifyRestore": True,
            "schedules": [
                {"name": "daily", "schedule": "0 2 * * *", "keep": 7},
                {"name": "monthly", "schedule": "0 4 1 * *", "keep": 12, "storageClass": "GLACIER"},
            ],
        },
        "maintenance": {
            "vacuum": {"schedule": "0 5 * * 0", "tables": ["ai_messages", "ai_threads"]}
        },
    }
)
JOBS = desired_cronjobs(Owner("ns", "lokifi-prod", "uid"), SPEC, JobSettings())


def container(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return dict(spec["containers"][0])


def parse(args: list[str]) -> Any:
    """Parse `lokifi-storage <args>` down to the leaf command, as click would, without running
    it; a usage error (unknown option, missing required one, bad choice) raises."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("lokifi-storage", list(args))
    while hasattr(command, "resolve_command"):  # a group: descend into the sub-command
        pending = [*getattr(ctx, "_protected_args", []), *ctx.args]
        _, sub, rest = command.resolve_command(ctx, pending)
        assert sub is not None
        command = sub
        ctx = command.make_context(command.name, rest, parent=ctx)
    return ctx


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j["metadata"]["name"])
def test_cronjob_arguments_parse_with_the_cli(job: dict[str, Any]) -> None:
    c = container(job)
    assert c["command"] == ["lokifi-storage"]
    ctx = parse(c["args"])
    assert ctx.command.name in ("create", "vacuum", "compress", "export")


def test_backup_job_passes_schedule_name_and_storage_class_the_cli_understands() -> None:
    monthly = next(j for j in JOBS if j["metadata"]["name"] == "lokifi-prod-backup-monthly")
    params = parse(container(monthly)["args"]).params
    assert params["schedule"] == "monthly"
    assert params["name"] == "lokifi-prod"
    assert params["namespace"] == "ns"
    assert params["storage_class"] == "GLACIER"
    assert params["keep"] == 12
    assert params["verify"] is True
    assert params["endpoint"] == "https://s3.example"


def test_verify_target_arrives_from_its_secret_and_is_named_to_the_cli() -> None:
    """Path 3: with backups.verifyTarget the job restores there (never on the primary); the
    URL comes from the Secret, never from an argument."""
    body = SPEC.model_dump(by_alias=True, exclude_none=True)
    body["backups"]["verifyTarget"] = {"secretRef": {"name": "lokifi-verify", "key": "url"}}
    spec = LokifiStorageSpec.model_validate(body)
    daily = next(
        j
        for j in desired_cronjobs(Owner("ns", "lokifi-prod", "uid"), spec, JobSettings())
        if j["metadata"]["name"] == "lokifi-prod-backup-daily"
    )
    params = parse(container(daily)["args"]).params
    assert params["verify"] is True
    assert params["verify_target_env"] == "LOKIFI_VERIFY_URL"
    env = {e["name"]: e for e in container(daily)["env"]}
    assert env["LOKIFI_VERIFY_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "lokifi-verify",
        "key": "url",
    }
    # Without a target the job verifies without a database: no scratch URL at all.
    plain = _job("lokifi-prod-backup-daily")
    assert parse(container(plain)["args"]).params["verify_target_env"] is None
    assert "LOKIFI_VERIFY_URL" not in {e["name"] for e in container(plain)["env"]}


def test_vacuum_job_lists_the_tables() -> None:
    vacuum = next(j for j in JOBS if j["metadata"]["name"] == "lokifi-prod-vacuum")
    params = parse(container(vacuum)["args"]).params
    assert params["tables"] == ["ai_messages", "ai_threads"]
    assert params["analyze"] is True


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j["metadata"]["name"])
def test_the_database_url_arrives_in_the_variable_the_cli_reads(job: dict[str, Any]) -> None:
    env = {e["name"]: e for e in container(job)["env"]}
    assert env[PRIMARY_URL_ENV]["valueFrom"]["secretKeyRef"] == {"name": "lokifi-db", "key": "url"}


def _job(name: str) -> dict[str, Any]:
    return next(job for job in JOBS if job["metadata"]["name"] == name)


def test_partition_work_runs_daily_for_the_tables_that_ask_for_it() -> None:
    compress = container(_job("lokifi-prod-partitions-compress"))
    export = container(_job("lokifi-prod-partitions-export"))
    assert compress["args"] == ["partitions", "compress"]
    assert export["args"][:2] == ["partitions", "export"]
    assert export["args"][-2:] == ["--endpoint", "https://s3.example"]
    tables_json = next(e["value"] for e in export["env"] if e["name"] == "LOKIFI_TABLES_JSON")
    tables = [TableSpec.model_validate(t) for t in json.loads(tables_json)]
    assert [t.name for t in tables] == ["ai_messages"]
    assert tables[0].archive is not None
    assert tables[0].archive.schema_ == "archive"
    secret_refs = {e["name"] for e in export["env"] if "valueFrom" in e}
    assert secret_refs == {"LOKIFI_PRIMARY_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_no_partition_jobs_without_archive_compression_or_retention() -> None:
    spec = SPEC.model_copy(
        update={"postgres": SPEC.postgres.model_copy(update={"tables": []})}  # type: ignore[union-attr]
    )
    names = [
        j["metadata"]["name"] for j in desired_cronjobs(Owner("ns", "x", "u"), spec, JobSettings())
    ]
    assert not [n for n in names if "-partitions-" in n]


def test_partition_jobs_follow_maintenance_partitions_schedule() -> None:
    assert _job("lokifi-prod-partitions-export")["spec"]["schedule"] == "30 1 * * *"
    spec = LokifiStorageSpec.model_validate(
        {
            **SPEC.model_dump(mode="json", by_alias=True, exclude_none=True),
            "maintenance": {"partitions": {"schedule": "15 3 * * 6"}},
        }
    )
    jobs = desired_cronjobs(Owner("ns", "lokifi-prod", "uid"), spec, JobSettings())
    schedules = {
        j["metadata"]["name"]: j["spec"]["schedule"]
        for j in jobs
        if "-partitions-" in j["metadata"]["name"]
    }
    assert schedules == {
        "lokifi-prod-partitions-compress": "15 3 * * 6",
        "lokifi-prod-partitions-export": "15 3 * * 6",
    }


def test_a_bad_partitions_schedule_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"maintenance\.partitions\.schedule"):
        LokifiStorageSpec.model_validate(
            {"maintenance": {"partitions": {"schedule": "61 * * * *"}}}
        )
