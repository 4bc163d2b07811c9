"""Replica wiring: probe the primary and each replica, judge them, build the DATABASE_* keys.

observe (clients/postgres/probe) -> judge (domain/replica_health) -> report. This part only reads:
it never writes to PostgreSQL. What it decides reaches the world through the connection Secret,
which the handler writes (and only when its data changed).

The URLs come in as parameters: the handler resolves them from the Secrets the spec names, so
this module never talks to Kubernetes and tests can pass the local stack's URLs directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from lokifi_storage.api import conditions
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.spec import LokifiStorageSpec, PostgresSpec, ReplicaSpec
from lokifi_storage.api.status import (
    Condition,
    LokifiStorageStatus,
    ReplicaStatus,
    failed,
    ready,
)
from lokifi_storage.clients.errors import AuthenticationFailed, ClientError
from lokifi_storage.clients.postgres.connection import describe_target
from lokifi_storage.clients.postgres.probe import PrimaryProbe, observe_replica, open_primary
from lokifi_storage.domain.connection_secret import database_entries
from lokifi_storage.domain.quantize import lag_for_status
from lokifi_storage.domain.replica_health import (
    PrimaryObservation,
    ReplicaHealth,
    ReplicaObservation,
    judge_replica,
)
from lokifi_storage.reconcile.parts import Part, PartContext
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.secrets import MissingSecretError

__all__ = ["PART", "PostgresPart", "ReplicaWiring", "reconcile_replicas"]

# How long a lagging replica is given to replay up to the primary's position before the lag
# falls back to the age of its last replayed transaction (domain/replica_health.py).
MAX_CATCHUP_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class ReplicaWiring:
    """Both reports of this part, and the observations behind them for metrics."""

    primary_report: PartReport
    replicas_report: PartReport
    primary: PrimaryObservation
    replicas: tuple[ReplicaHealth, ...]


def _catchup_wait(replica: ReplicaSpec) -> float:
    return max(0.0, min(replica.maxLagSeconds, MAX_CATCHUP_WAIT_SECONDS))


def _observe_all(
    spec: PostgresSpec, primary_url: str, replica_urls: Mapping[str, str]
) -> tuple[PrimaryObservation, list[ReplicaObservation]]:
    try:
        with open_primary(primary_url) as primary:
            observation = primary.observe()
            position_of = _position_reader(primary, observation)
            return observation, [
                _observe_one(replica, replica_urls, position_of) for replica in spec.replicas
            ]
    except ClientError as error:
        primary_obs = PrimaryObservation(
            target=_safe_target(primary_url),
            reachable=False,
            error_reason=(
                Reason.AUTHENTICATION_FAILED
                if isinstance(error, AuthenticationFailed)
                else Reason.CONNECTION_FAILED
            ),
            error_message=error.message,
        )
    # Without the primary there is no position to compare with; replicas are still probed.
    return primary_obs, [_observe_one(replica, replica_urls, None) for replica in spec.replicas]


def _position_reader(primary: PrimaryProbe, observation: PrimaryObservation) -> PrimaryProbe | None:
    return None if observation.in_recovery else primary


def _observe_one(
    replica: ReplicaSpec, replica_urls: Mapping[str, str], primary: PrimaryProbe | None
) -> ReplicaObservation:
    url = replica_urls.get(replica.name)
    if url is None:
        ref = replica.secretRef
        return ReplicaObservation(
            name=replica.name,
            target="(no URL)",
            reachable=False,
            error_reason=Reason.SECRET_NOT_FOUND,
            error_message=(
                f"Secret {ref.name!r} key {ref.key!r} with the replica's URL is not available"
            ),
        )
    return observe_replica(
        replica.name,
        url,
        primary.current_lsn if primary is not None else None,
        _catchup_wait(replica),
    )


def _safe_target(url: str) -> str:
    try:
        return str(describe_target(url))
    except ClientError:
        return "(unparseable URL)"


def _primary_condition(obs: PrimaryObservation) -> Condition:
    kind = conditions.POSTGRES_READY
    if not obs.reachable:
        return failed(
            kind,
            obs.error_reason or Reason.CONNECTION_FAILED,
            obs.error_message or f"primary {obs.target} could not be reached",
        )
    if obs.in_recovery:
        return failed(
            kind,
            Reason.PRIMARY_IN_RECOVERY,
            f"primary {obs.target} is in recovery (a standby): it cannot take writes",
        )
    return ready(kind, f"primary {obs.target} accepts writes (PostgreSQL {obs.server_version})")


def _replicas_condition(verdicts: list[ReplicaHealth]) -> Condition:
    kind = conditions.REPLICAS_READY
    unhealthy = [v for v in verdicts if not v.healthy]
    if not verdicts:
        return ready(kind, "no replicas declared; reads go to the primary")
    if not unhealthy:
        return ready(kind, f"{len(verdicts)} of {len(verdicts)} replicas healthy")
    reasons = {v.reason for v in unhealthy}
    reason = reasons.pop() if len(reasons) == 1 else Reason.REPLICAS_DEGRADED
    healthy_count = len(verdicts) - len(unhealthy)
    fallback = "" if healthy_count else "; reads go to the primary"
    return failed(
        kind,
        reason or Reason.REPLICAS_DEGRADED,
        f"{healthy_count} of {len(verdicts)} replicas healthy{fallback}. "
        + "; ".join(v.message for v in unhealthy),
    )


def _replica_status(verdict: ReplicaHealth) -> ReplicaStatus:
    lag = None if verdict.lag_seconds is None else lag_for_status(verdict.lag_seconds)
    return ReplicaStatus(
        name=verdict.name,
        healthy=verdict.healthy,
        lagSeconds=lag,
        streaming=verdict.streaming,
        reason=verdict.reason,
    )


def reconcile_replicas(
    spec: PostgresSpec, primary_url: str, replica_urls: Mapping[str, str]
) -> ReplicaWiring:
    """Probe, judge and report; `replica_urls` maps replica names to URLs (missing = no Secret)."""
    primary_obs, observations = _observe_all(spec, primary_url, replica_urls)
    max_lag = {replica.name: replica.maxLagSeconds for replica in spec.replicas}
    verdicts = [judge_replica(obs, max_lag[obs.name]) for obs in observations]

    secret_data: dict[str, str] = {}
    if spec.connectionSecret is not None:
        healthy_urls = [replica_urls[v.name] for v in verdicts if v.healthy]
        secret_data = database_entries(
            primary_url, healthy_urls, spec.pool, spec.connectionSecret.driver
        )

    return ReplicaWiring(
        primary_report=PartReport(condition=_primary_condition(primary_obs)),
        replicas_report=PartReport(
            condition=_replicas_condition(verdicts),
            status=LokifiStorageStatus(replicas=[_replica_status(v) for v in verdicts]),
            secret_data=secret_data,
        ),
        primary=primary_obs,
        replicas=tuple(verdicts),
    )


class PostgresPart:
    """spec.postgres: PostgresReady and ReplicasReady, status.replicas, the DATABASE_* keys."""

    name = "postgres"
    conditions = (conditions.POSTGRES_READY, conditions.REPLICAS_READY)
    status_keys = ("replicas",)

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return spec.postgres is not None

    def run(self, ctx: PartContext) -> list[PartReport]:
        postgres = ctx.spec.postgres
        assert postgres is not None
        primary_url = ctx.secrets.value(postgres.primary.secretRef)
        replica_urls: dict[str, str] = {}
        for replica in postgres.replicas:
            # A replica whose Secret is missing is reported SecretNotFound by the part itself,
            # which still probes the others.
            with contextlib.suppress(MissingSecretError):
                replica_urls[replica.name] = ctx.secrets.value(replica.secretRef)
        wiring = reconcile_replicas(postgres, primary_url, replica_urls)
        return [wiring.primary_report, wiring.replicas_report]

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []  # it only reads

    def release(self, ctx: PartContext) -> list[str]:
        return []  # it claims nothing


PART: Part = PostgresPart()
