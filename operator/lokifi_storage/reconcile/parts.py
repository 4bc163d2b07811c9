"""What a part of the storage stack is to the resource reconciler, and how one failing is contained.

Each part (reconcile/replicas.py, partitions.py, redis.py, ...) implements `Part` next to the
code it drives, and reconcile/resource.py lists them by importing them: a part that is misspelt
or does not satisfy the protocol is an import or type error, never a part silently not called.

Failure isolation is done here, once for all parts: a missing Secret becomes the part's
conditions False with SecretNotFound/SecretKeyNotFound naming it; a client error becomes its
reason and message; anything else becomes PartFailed with the exception's type only (an
unknown exception's text could quote a connection string).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from lokifi_storage import metrics
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import LokifiStorageStatus, failed
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.domain.claims import Claimant
from lokifi_storage.reconcile.fence import Fence, LeadershipLost
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.secrets import MissingSecretError, SecretReader

__all__ = [
    "S3_KEYS",
    "CleanupIncompleteError",
    "Part",
    "PartContext",
    "claimant_of",
    "clean_up_parts",
    "failed_reports",
    "release_parts",
    "run_part",
    "run_parts",
    "s3_credentials",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartContext:
    """Everything a part may use: the spec, the resource's identity, its Secrets, its status."""

    spec: LokifiStorageSpec
    namespace: str
    name: str
    uid: str
    secrets: SecretReader
    now: datetime
    memory: dict[str, Any] = field(default_factory=dict)
    status: LokifiStorageStatus = field(default_factory=LokifiStorageStatus)
    created: datetime | None = None
    apply: bool = True  # False: observe and plan only (spec.dryRun, `lokifi-storage plan`)
    fence: Fence = field(default_factory=Fence)
    at: datetime | None = None  # an explicit instant to plan partitions at (`plan --now`)
    generation: int | None = None  # metadata.generation of the resource (None: a manifest)


@runtime_checkable
class Part(Protocol):
    """One part of the storage stack as the resource reconciler sees it.

    `conditions` are the condition types `run` reports (one report each); `status_keys` the
    `.status` blocks it owns, removed when the spec no longer declares it. `cleanup` removes
    what the part created outside Kubernetes, for deletionPolicy Delete; `release` gives up
    the claims the resource holds (domain/claims.py), whatever the deletionPolicy. Both return
    one line per thing done, and [] when the part has nothing of the kind.
    """

    @property
    def name(self) -> str: ...

    @property
    def conditions(self) -> tuple[str, ...]: ...

    @property
    def status_keys(self) -> tuple[str, ...]: ...

    def declared(self, spec: LokifiStorageSpec) -> bool: ...

    def run(self, ctx: PartContext) -> list[PartReport]: ...

    def cleanup(self, ctx: PartContext) -> list[str]: ...

    def release(self, ctx: PartContext) -> list[str]: ...


def failed_reports(part: Part, reason: str, message: str) -> list[PartReport]:
    """One False report per condition of `part`: what it reports when it could not run."""
    return [PartReport(condition=failed(kind, reason, message)) for kind in part.conditions]


def run_part(part: Part, ctx: PartContext) -> list[PartReport]:
    """Run one part; whatever happens, return one report per condition it owns."""
    try:
        reports = part.run(ctx)
    except MissingSecretError as missing:
        return failed_reports(part, missing.reason, missing.message)
    except ClientError as error:
        return failed_reports(part, error.reason, error.message)
    except Exception as error:  # one part never takes the others down
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error("part %s raised %s\n%s", part.name, type(error).__name__, frames)
        return failed_reports(
            part,
            Reason.PART_FAILED,
            f"{part.name} failed with {type(error).__name__}; see the operator log",
        )
    return list(reports)


def _timed_run(part: Part, ctx: PartContext) -> list[PartReport]:
    """run_part, with its duration and outcome recorded in the metrics."""
    started = time.monotonic()
    reports = run_part(part, ctx)
    failing = [r.condition for r in reports if r.condition.status != "True"]
    metrics.observe_part(
        ctx.namespace,
        ctx.name,
        part.name,
        time.monotonic() - started,
        ok=not failing,
        reason=failing[0].reason if failing else None,
    )
    return reports


def run_parts(parts: Sequence[Part], ctx: PartContext, timeout: float) -> list[PartReport]:
    """Every part of `parts` in parallel, in their order; one that has not finished after
    `timeout` seconds is reported failed (its thread is left to end on its own)."""
    if len(parts) <= 1:
        return [r for p in parts for r in _timed_run(p, ctx)]
    reports: list[PartReport] = []
    pool = ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="part")
    try:
        futures = [(p, pool.submit(_timed_run, p, ctx)) for p in parts]
        for part, future in futures:
            try:
                reports += future.result(timeout=timeout)
            except FutureTimeout:
                reports += failed_reports(
                    part, Reason.PART_FAILED, f"{part.name} did not finish within {timeout:.0f}s"
                )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return reports


class CleanupIncompleteError(ClientError):
    """deletionPolicy Delete: some part could not remove what it created (yet)."""

    reason = Reason.CLEANUP_FAILED


def _each_declared(
    parts: Sequence[Part], ctx: PartContext, step: Callable[[Part], list[str]], what: str
) -> tuple[list[str], list[str]]:
    """`step` of each declared part, each started only while `ctx.fence` holds; (lines done,
    failures as messages). One part failing never skips the others'; a shut fence stops them
    all (LeadershipLost)."""
    done: list[str] = []
    failures: list[str] = []
    for part in parts:
        if not part.declared(ctx.spec):
            continue
        ctx.fence.check(f"{what} of {part.name} for {ctx.namespace}/{ctx.name}")
        try:
            done += step(part)
        except LeadershipLost:
            raise  # no part goes on once this process may not write
        except (MissingSecretError, ClientError) as error:
            failures.append(f"{part.name}: {error.message}")
        except Exception as error:
            log.error("%s of %s raised %s", what, part.name, type(error).__name__)
            failures.append(f"{part.name}: {type(error).__name__}; see the operator log")
    return done, failures


def clean_up_parts(parts: Sequence[Part], ctx: PartContext) -> tuple[list[str], list[str]]:
    """Each declared part's cleanup; (actions taken, failures as messages)."""
    return _each_declared(parts, ctx, lambda part: part.cleanup(ctx), "cleanup")


def release_parts(parts: Sequence[Part], ctx: PartContext) -> tuple[list[str], list[str]]:
    """Each declared part's release of claims; (claims released, failures as messages)."""
    return _each_declared(parts, ctx, lambda part: part.release(ctx), "release")


def claimant_of(ctx: PartContext) -> Claimant:
    return Claimant(uid=ctx.uid, namespace=ctx.namespace, name=ctx.name)


S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def s3_credentials(ctx: PartContext) -> tuple[str | None, str | None]:
    """The S3 keys of spec.objectStorage's Secret (both None without objectStorage): shared by
    the object storage and backups parts, which talk to the same endpoint."""
    storage = ctx.spec.objectStorage
    if storage is None:
        return None, None
    keys = ctx.secrets.keys(storage.credentialsSecretRef.name, S3_KEYS)
    return keys[S3_KEYS[0]], keys[S3_KEYS[1]]
