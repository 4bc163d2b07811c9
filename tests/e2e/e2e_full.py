"""The full example of DESIGN.md as a test fixture: its database, buckets, Secrets and YAML."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from e2e_operator import create_secret, get_json, kubectl, render

from stackfixtures import PgDatabase, StackEnv


class FullExample:
    """The full example of DESIGN.md in a test namespace, pointed at the stack's servers.

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
        self.values: dict[str, object] = {
            "namespace": namespace,
            "s3_endpoint": stack.s3_endpoint,
            "region": stack.aws_region,
            "media_bucket": buckets["media"],
            "backup_bucket": buckets["backups"],
            "archive_bucket": buckets["archive"],
            "maxmemory": "2gb",
            "daily_schedule": "0 2 * * *",
        }

    def create_secrets(self, *, skip: Sequence[str] = ()) -> None:
        secrets = {
            "lokifi-db": {"url": self.database.primary_url},
            "lokifi-db-replica-1": {"url": self.database.replica_url},
            "lokifi-redis": {"password": self.stack.redis_password},
            "lokifi-s3": {
                "AWS_ACCESS_KEY_ID": self.stack.aws_access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.stack.aws_secret_access_key,
            },
        }
        for name, data in secrets.items():
            if name not in skip:
                create_secret(self.stack, self.namespace, name, **data)

    def manifest(self, **overrides: object) -> str:
        return render("ready", "lokifistorage.yaml", **{**self.values, **overrides})

    def apply(self, **overrides: object) -> None:
        self.values.update(overrides)
        kubectl(self.stack, "apply", "-f", "-", input_text=self.manifest())

    def get(self) -> dict[str, Any] | None:
        return get_json(self.stack, self.namespace, "lokifistorage", self.name)
