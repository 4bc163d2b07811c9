"""The registry of parts the resource reconciler calls, and the adapters that call them.

Each part's reconciler (reconcile/replicas.py, redis.py, partitions.py, ...) has the signature
its author found natural: it takes its piece of the spec and plain credentials, and returns
PartReports. An adapter here is the glue: it says which conditions and status keys the part
owns, whether the spec declares it, and how to feed it the credentials from the Secrets.

Adapters import their part lazily: a part whose module is not there yet is simply not called
(`available()` is False), so the operator works with the parts that exist.

Failure isolation is done here, once for all parts: a missing Secret becomes the part's
conditions False with SecretNotFound/SecretKeyNotFound naming it; a client error becomes its
reason and message; anything else becomes PartFailed with the exception's type only (an
unknown exception's text could quote a connection string).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import Condition
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.pg_backup import server_identity
from lokifi_storage.domain.backup_catalog import backup_folder, source_id
from lokifi_storage.domain.claims import Claimant
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.secrets import MissingSecretError, SecretReader

__all__ = [
    "CleanupIncompleteError",
    "Part",
    "PartContext",
    "claimant_of",
    "clean_up_parts",
    "default_parts",
    "release_parts",
    "run_part",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartContext:
    """Everything a part adapter may use: the spec, the resource's identity, its Secrets."""

    spec: LokifiStorageSpec
    namespace: str
    name: str
    uid: str
    secrets: SecretReader
    now: datetime
    memory: dict[str, Any] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    apply: bool = True  # False: observe and plan only (spec.dryRun, `lokifi-storage plan`)
    fence: Fence = field(default_factory=Fence)
    at: datetime | None = None  # an explicit instant to plan partitions at (`plan --now`)


RunFn = Callable[[Any, PartContext], list[PartReport]]
CleanupFn = Callable[[Any, PartContext], list[str]]


@dataclass(frozen=True)
class Part:
    """One part of the storage stack as the resource reconciler sees it.

    `module` is imported lazily; `run(module, ctx)` returns this part's reports (one per
    condition in `conditions`); `cleanup(module, ctx)` removes what the part created, for
    deletionPolicy Delete (None: it creates nothing outside Kubernetes); `release(module, ctx)`
    gives up the claims the resource holds (domain/claims.py), whatever the deletionPolicy.
    """

    name: str
    module: str
    conditions: tuple[str, ...]
    status_keys: tuple[str, ...]
    declared: Callable[[LokifiStorageSpec], bool]
    run: RunFn
    cleanup: CleanupFn | None = None
    required_attribute: str | None = None
    release: CleanupFn | None = None

    def load(self) -> Any | None:
        """The part's module, or None when it (or its entry point) does not exist yet."""
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as error:
            if error.name == self.module:
                return None
            raise
        if self.required_attribute and not hasattr(module, self.required_attribute):
            return None
        return module

    def available(self) -> bool:
        return self.load() is not None


def _failed(part: Part, reason: str, message: str) -> list[PartReport]:
    return [
        PartReport(condition=Condition(type=kind, status="False", reason=reason, message=message))
        for kind in part.conditions
    ]


def run_part(part: Part, ctx: PartContext) -> list[PartReport]:
    """Run one part; whatever happens, return one report per condition it owns."""
    module = part.load()
    if module is None:
        return []
    try:
        reports = part.run(module, ctx)
    except MissingSecretError as missing:
        return _failed(part, missing.reason, missing.message)
    except ClientError as error:
        return _failed(part, error.reason, error.message)
    except Exception as error:  # one part never takes the others down
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error("part %s raised %s\n%s", part.name, type(error).__name__, frames)
        return _failed(
            part,
            Reason.PART_FAILED,
            f"{part.name} failed with {type(error).__name__}; see the operator log",
        )
    return list(reports)


class CleanupIncompleteError(ClientError):
    """deletionPolicy Delete: some part could not remove what it created (yet)."""

    reason = Reason.CLEANUP_FAILED


def clean_up_parts(parts: Sequence[Part], ctx: PartContext) -> tuple[list[str], list[str]]:
    """Each declared part's cleanup; (actions taken, failures as messages)."""
    actions: list[str] = []
    failures: list[str] = []
    for part in parts:
        if part.cleanup is None or not part.declared(ctx.spec):
            continue
        module = part.load()
        if module is None:
            continue
        try:
            actions += part.cleanup(module, ctx)
        except (MissingSecretError, ClientError) as error:
            failures.append(f"{part.name}: {error.message}")
        except Exception as error:  # one part's cleanup never skips the others'
            log.error("cleanup of %s raised %s", part.name, type(error).__name__)
            failures.append(f"{part.name}: {type(error).__name__}; see the operator log")
    return actions, failures


def release_parts(parts: Sequence[Part], ctx: PartContext) -> tuple[list[str], list[str]]:
    """Each declared part's release of claims; (claims released, failures as messages)."""
    released: list[str] = []
    failures: list[str] = []
    for part in parts:
        if part.release is None or not part.declared(ctx.spec):
            continue
        module = part.load()
        if module is None:
            continue
        try:
            released += part.release(module, ctx)
        except (MissingSecretError, ClientError) as error:
            failures.append(f"{part.name}: {error.message}")
        except Exception as error:  # one part's release never skips the others'
            log.error("release of %s raised %s", part.name, type(error).__name__)
            failures.append(f"{part.name}: {type(error).__name__}; see the operator log")
    return released, failures


def claimant_of(ctx: PartContext) -> Claimant:
    return Claimant(uid=ctx.uid, namespace=ctx.namespace, name=ctx.name)


# --- adapters ------------------------------------------------------------------------------


def _run_replicas(module: Any, ctx: PartContext) -> list[PartReport]:
    postgres = ctx.spec.postgres
    assert postgres is not None
    primary_url = ctx.secrets.value(postgres.primary.secretRef)
    replica_urls: dict[str, str] = {}
    for replica in postgres.replicas:
        # A replica whose Secret is missing is reported SecretNotFound by the part itself,
        # which still probes the others.
        with contextlib.suppress(MissingSecretError):
            replica_urls[replica.name] = ctx.secrets.value(replica.secretRef)
    wiring = module.reconcile_replicas(postgres, primary_url, replica_urls)
    return [wiring.primary_report, wiring.replicas_report]


def _run_redis(module: Any, ctx: PartContext) -> list[PartReport]:
    redis = ctx.spec.redis
    assert redis is not None
    password = ctx.secrets.optional(redis.passwordSecretRef)
    return [module.reconcile_redis(redis, password, apply=ctx.apply, claimant=claimant_of(ctx))]


def _release_redis(module: Any, ctx: PartContext) -> list[str]:
    redis = ctx.spec.redis
    assert redis is not None
    password = ctx.secrets.optional(redis.passwordSecretRef)
    released: list[str] = module.release_redis_claims(redis, password, claimant_of(ctx))
    return released


def _run_partitions(module: Any, ctx: PartContext) -> list[PartReport]:
    postgres = ctx.spec.postgres
    assert postgres is not None
    primary_url = ctx.secrets.value(postgres.primary.secretRef)
    return [
        module.reconcile_partitions(
            postgres,
            primary_url,
            now=ctx.now,
            apply=ctx.apply,
            claimant=claimant_of(ctx),
            fence=ctx.fence,
            at=ctx.at,
        )
    ]


def _release_tables(module: Any, ctx: PartContext) -> list[str]:
    postgres = ctx.spec.postgres
    assert postgres is not None
    primary_url = ctx.secrets.value(postgres.primary.secretRef)
    released: list[str] = module.release_table_claims(primary_url, claimant_of(ctx))
    return released


def _clean_up_archives(module: Any, ctx: PartContext) -> list[str]:
    """Drop each archive table the operator created, but only while it is empty."""
    postgres = ctx.spec.postgres
    assert postgres is not None
    primary_url = ctx.secrets.value(postgres.primary.secretRef)
    archives = [
        (table.archive.schema_, table.name.rpartition(".")[2])
        for table in postgres.tables
        if table.archive is not None
    ]
    return module.drop_empty_archive_tables(primary_url, archives) if archives else []


S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _s3_credentials(ctx: PartContext) -> tuple[str | None, str | None]:
    storage = ctx.spec.objectStorage
    if storage is None:
        return None, None
    keys = ctx.secrets.keys(storage.credentialsSecretRef.name, S3_KEYS)
    return keys[S3_KEYS[0]], keys[S3_KEYS[1]]


def _managed_rules(ctx: PartContext) -> dict[str, list[str]]:
    """status.objectStorage's managedRules per bucket: what the last pass managed."""
    buckets = (ctx.status.get("objectStorage") or {}).get("buckets") or []
    return {b["name"]: list(b.get("managedRules") or []) for b in buckets if "name" in b}


def _run_object_storage(module: Any, ctx: PartContext) -> list[PartReport]:
    storage = ctx.spec.objectStorage
    assert storage is not None
    access_key, secret_key = _s3_credentials(ctx)
    return [
        module.reconcile_object_storage(
            storage,
            access_key,
            secret_key,
            previously_managed=_managed_rules(ctx),
            apply=ctx.apply,
            claimant=claimant_of(ctx),
        )
    ]


def _release_lifecycle(module: Any, ctx: PartContext) -> list[str]:
    storage = ctx.spec.objectStorage
    assert storage is not None
    access_key, secret_key = _s3_credentials(ctx)
    released: list[str] = module.release_lifecycle_claims(
        storage, access_key, secret_key, claimant_of(ctx)
    )
    return released


def _clean_up_lifecycle(module: Any, ctx: PartContext) -> list[str]:
    """Remove the lifecycle rules the operator set; every other rule of the bucket stays.

    Declaring no rules for a bucket whose rules the operator managed is exactly what makes the
    part retire them, so the cleanup is one more pass with empty lifecycles.
    """
    storage = ctx.spec.objectStorage
    assert storage is not None
    access_key, secret_key = _s3_credentials(ctx)
    managed = _managed_rules(ctx)
    for bucket in storage.buckets:
        managed[bucket.name] = sorted(
            {*managed.get(bucket.name, []), *(r.id for r in bucket.lifecycle)}
        )
    emptied = storage.model_copy(
        update={
            "buckets": [
                b.model_copy(update={"lifecycle": [], "create": False}) for b in storage.buckets
            ]
        }
    )
    report: PartReport = module.reconcile_object_storage(
        emptied, access_key, secret_key, previously_managed=managed, claimant=claimant_of(ctx)
    )
    if report.condition.status != "True":
        raise ClientError(report.condition.message, reason=report.condition.reason)
    return list(report.actions)


def _backup_source(ctx: PartContext) -> str:
    """The primary's `<system_identifier>-<database>`, read once per primary URL: the folder
    the backup CronJobs write to, and the only one this resource reports."""
    postgres = ctx.spec.postgres
    assert postgres is not None
    url = ctx.secrets.value(postgres.primary.secretRef)
    fingerprint = hashlib.sha256(url.encode()).hexdigest()
    cached = ctx.memory.get("backupSource")
    if cached is not None and cached[0] == fingerprint:
        return str(cached[1])
    source = source_id(*server_identity(url))
    ctx.memory["backupSource"] = (fingerprint, source)
    return source


def _run_backups(module: Any, ctx: PartContext) -> list[PartReport]:
    backups = ctx.spec.backups
    assert backups is not None
    folder = backup_folder(ctx.namespace, ctx.name, _backup_source(ctx))
    access_key, secret_key = _s3_credentials(ctx)
    return [
        module.reconcile_backups(
            backups,
            ctx.spec.objectStorage,
            access_key,
            secret_key,
            folder=folder,
            now=ctx.now,
            since=ctx.created,
        )
    ]


def _run_capacity(module: Any, ctx: PartContext) -> list[PartReport]:
    postgres, monitoring = ctx.spec.postgres, ctx.spec.monitoring
    assert postgres is not None
    assert monitoring is not None
    primary_url = ctx.secrets.value(postgres.primary.secretRef)
    return [
        module.reconcile_capacity(
            monitoring,
            primary_url,
            ctx.status.get("storage"),
            ctx.now,
            namespace=ctx.namespace,
            name=ctx.name,
        )
    ]


def default_parts() -> list[Part]:
    """Every part, in the order their conditions are listed."""
    return [
        Part(
            name="postgres",
            module="lokifi_storage.reconcile.replicas",
            conditions=(types.POSTGRES_READY, types.REPLICAS_READY),
            status_keys=("replicas",),
            declared=lambda spec: spec.postgres is not None,
            run=_run_replicas,
            required_attribute="reconcile_replicas",
        ),
        Part(
            name="partitions",
            module="lokifi_storage.reconcile.partitions",
            conditions=(types.PARTITIONS_READY,),
            status_keys=("partitions",),
            declared=lambda spec: spec.postgres is not None and bool(spec.postgres.tables),
            run=_run_partitions,
            required_attribute="reconcile_partitions",
            release=_release_tables,
        ),
        Part(
            name="archive-tables",
            module="lokifi_storage.clients.pg_cleanup",
            conditions=(),
            status_keys=(),
            declared=lambda spec: (
                spec.postgres is not None
                and any(t.archive is not None for t in spec.postgres.tables)
            ),
            run=lambda module, ctx: [],
            cleanup=_clean_up_archives,
            required_attribute="drop_empty_archive_tables",
        ),
        Part(
            name="redis",
            module="lokifi_storage.reconcile.redis",
            conditions=(types.REDIS_READY,),
            status_keys=("redis",),
            declared=lambda spec: spec.redis is not None,
            run=_run_redis,
            required_attribute="reconcile_redis",
            release=_release_redis,
        ),
        Part(
            name="object-storage",
            module="lokifi_storage.reconcile.object_storage",
            conditions=(types.OBJECT_STORAGE_READY,),
            status_keys=("objectStorage",),
            declared=lambda spec: (
                spec.objectStorage is not None and bool(spec.objectStorage.buckets)
            ),
            run=_run_object_storage,
            cleanup=_clean_up_lifecycle,
            required_attribute="reconcile_object_storage",
            release=_release_lifecycle,
        ),
        Part(
            name="backups",
            module="lokifi_storage.reconcile.backups",
            conditions=(types.BACKUPS_READY,),
            status_keys=("backups",),
            declared=lambda spec: spec.backups is not None,
            run=_run_backups,
            required_attribute="reconcile_backups",
        ),
        Part(
            name="capacity",
            module="lokifi_storage.reconcile.capacity",
            conditions=(types.CAPACITY_OK,),
            status_keys=("storage",),
            declared=lambda spec: spec.monitoring is not None and spec.postgres is not None,
            run=_run_capacity,
            required_attribute="reconcile_capacity",
        ),
    ]


def declared_parts(parts: Sequence[Part], spec: LokifiStorageSpec) -> list[Part]:
    """The parts the spec declares and whose code exists."""
    return [part for part in parts if part.declared(spec) and part.available()]
