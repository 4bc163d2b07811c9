"""The full example (examples/lokifistorage-full.yaml) as a test fixture: its database, buckets,
Secrets and YAML."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from e2e_operator import (
    OperatorFactory,
    OperatorProcess,
    create_secret,
    get_json,
    kubectl,
    render,
)

from stackfixtures import PgDatabase, StackEnv


def create_example_secrets(
    stack: StackEnv, namespace: str, database: PgDatabase, *, skip: Sequence[str] = ()
) -> None:
    """The four Secrets the full example names, holding the stack's credentials (sent on stdin)."""
    secrets = {
        "lokifi-db": {"url": database.primary_url},
        "lokifi-db-replica-1": {"url": database.replica_url},
        "lokifi-redis": {"password": stack.redis_password},
        "lokifi-s3": {
            "AWS_ACCESS_KEY_ID": stack.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": stack.aws_secret_access_key,
        },
    }
    for name, data in secrets.items():
        if name not in skip:
            create_secret(stack, namespace, name, **data)


def example_values(stack: StackEnv, namespace: str, buckets: dict[str, str]) -> dict[str, object]:
    """What fixtures/ready/lokifistorage.yaml is rendered with by default: the stack's endpoints,
    the test's buckets and the example's settings. One place, so the e2e fixture and the operator
    benchmarks render the same resource."""
    return {
        "namespace": namespace,
        "s3_endpoint": stack.s3_endpoint,
        "region": stack.aws_region,
        "media_bucket": buckets["media"],
        "backup_bucket": buckets["backups"],
        "archive_bucket": buckets["archive"],
        "maxmemory": "2gb",
        "daily_schedule": "0 2 * * *",
        "premake": 3,
        "conn_secret": "lokifi-db-conn",
    }


class FullExample:
    """The full example in a test namespace, pointed at the stack's servers.

    Creates the application's tables in a fresh database, three fresh buckets and the four
    Secrets the example names; `apply(**overrides)` renders fixtures/ready/lokifistorage.yaml
    and applies it with kubectl.
    """

    name = "lokifi-prod"

    def __init__(
        self, stack: StackEnv, namespace: str, database: PgDatabase, buckets: dict[str, str]
    ) -> None:
        self.stack = stack
        self.namespace = namespace
        self.database = database
        self.buckets = buckets
        self.values = example_values(stack, namespace, buckets)

    def create_secrets(self, *, skip: Sequence[str] = ()) -> None:
        create_example_secrets(self.stack, self.namespace, self.database, skip=skip)

    def manifest(self, **overrides: object) -> str:
        return render("ready", "lokifistorage.yaml", **{**self.values, **overrides})

    def apply(self, **overrides: object) -> None:
        self.values.update(overrides)
        kubectl(self.stack, "apply", "-f", "-", input_text=self.manifest())

    def get(self) -> dict[str, Any] | None:
        return get_json(self.stack, self.namespace, "lokifistorage", self.name)

    def run_ready(self, start_operator: OperatorFactory, **options: Any) -> OperatorProcess:
        """Secrets, the resource and an operator (`options` as start_operator takes them),
        once Ready: where most operator tests start."""
        self.create_secrets()
        self.apply()
        operator = start_operator(self.namespace, **options)
        self.wait_ready()
        return operator

    def wait_ready(self, timeout: str = "120s") -> None:
        """Wait until the resource reports Ready=True (kubectl wait fails the test otherwise)."""
        kubectl(
            self.stack,
            "-n",
            self.namespace,
            "wait",
            "--for=condition=Ready",
            f"lks/{self.name}",
            f"--timeout={timeout}",
        )


def expected_months(premake: int) -> set[str]:
    """ai_messages_pYYYY_MM for this month and `premake` months ahead (UTC)."""
    today = datetime.now(UTC)
    names = set()
    for ahead in range(premake + 1):
        year, month = divmod(today.month - 1 + ahead, 12)
        names.add(f"ai_messages_p{today.year + year:04d}_{month + 1:02d}")
    return names


def partitions(full_example: FullExample, table: str) -> set[str]:
    """Names of the partitions attached to `table`."""
    with psycopg.connect(full_example.database.primary_url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            (table,),
        ).fetchall()
    return {row[0] for row in rows}
