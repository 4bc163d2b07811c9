"""Is a read replica fit to serve reads? Pure judgement over what the probes observed.

How lag is measured (the probe in clients/postgres/probe.py does the I/O, this module the
arithmetic):

1. Right before probing a replica, the primary's current WAL position P is read.
2. If the replica's replay position is already at or past P, it has every change the primary
   had: lag is 0. This is what makes an idle primary right: with no writes,
   `now() - pg_last_xact_replay_timestamp()` grows forever although the replica is current.
3. Otherwise the probe waits a short, bounded time for the replica to replay up to P. If it gets
   there after `w` seconds, lag is `w`: everything committed before P became visible on the
   replica within `w`. This avoids the opposite mistake: after an hour of idleness, a replica
   a few milliseconds behind a new write would otherwise be reported an hour behind.
4. If it does not get there in time, lag is `now() - pg_last_xact_replay_timestamp()` on the
   replica (never less than the time waited): how old the newest change it shows is. A stuck or
   paused replica grows past `maxLagSeconds` this way.

Bytes behind (`pg_wal_lsn_diff(P, replay)`) are reported beside the seconds for admins; health is
decided in seconds because `maxLagSeconds` is what the spec declares.

When the primary cannot be reached there is no P: the lag cannot be measured, and a replica that
is reachable and in recovery is still counted healthy. During a primary outage the replicas are
the only servers that can answer reads; naming the unreachable primary instead would turn a
write outage into a read outage too.
"""

from __future__ import annotations

from dataclasses import dataclass

from lokifi_storage.api.conditions import Reason


@dataclass(frozen=True)
class PrimaryObservation:
    """What a probe saw on the primary. `error_*` are set when it could not be reached."""

    target: str
    reachable: bool
    in_recovery: bool | None = None
    server_version: str | None = None
    error_reason: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class ReplicaObservation:
    """What a probe saw on one replica, all times in seconds.

    `caught_up_after` is 0 when the replica was at or past the primary's position at the first
    look, the seconds it took when it got there during the wait, and None when it did not (or
    when there was no primary position to compare with). `last_replay_age` is the replica's
    `now() - pg_last_xact_replay_timestamp()`.
    """

    name: str
    target: str
    reachable: bool
    in_recovery: bool | None = None
    streaming: bool | None = None
    replay_paused: bool | None = None
    primary_position_known: bool = False
    bytes_behind: int | None = None
    caught_up_after: float | None = None
    last_replay_age: float | None = None
    waited: float = 0.0
    error_reason: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class ReplicaHealth:
    """The verdict on one replica: what goes into status.replicas and the Secret."""

    name: str
    healthy: bool
    lag_seconds: float | None
    lag_bytes: int | None
    streaming: bool | None
    reason: str | None
    message: str


def lag_seconds(obs: ReplicaObservation) -> float | None:
    """Seconds the replica is behind, by the rules in this module's docstring; None if unknown."""
    if obs.caught_up_after is not None:
        return max(obs.caught_up_after, 0.0)
    if obs.last_replay_age is not None and obs.primary_position_known:
        return max(obs.last_replay_age, obs.waited, 0.0)
    return None


def judge_replica(obs: ReplicaObservation, max_lag_seconds: float) -> ReplicaHealth:
    """Healthy = reachable, in recovery and at most `max_lag_seconds` behind the primary."""
    lag = lag_seconds(obs) if obs.reachable else None
    streaming = obs.streaming if obs.reachable else None

    def verdict(healthy: bool, reason: str | None, message: str) -> ReplicaHealth:
        return ReplicaHealth(
            name=obs.name,
            healthy=healthy,
            lag_seconds=None if lag is None else round(lag, 3),
            lag_bytes=obs.bytes_behind if obs.reachable else None,
            streaming=streaming,
            reason=reason,
            message=message,
        )

    if not obs.reachable:
        reason = obs.error_reason or Reason.REPLICA_UNREACHABLE
        detail = obs.error_message or f"{obs.target} could not be reached"
        return verdict(False, reason, f"{obs.name}: {detail}")
    if not obs.in_recovery:
        return verdict(
            False,
            Reason.REPLICA_NOT_IN_RECOVERY,
            f"{obs.name}: {obs.target} is not in recovery (promoted or not a replica); "
            "it no longer follows the primary",
        )
    if not obs.primary_position_known:
        return verdict(
            True,
            None,
            f"{obs.name}: in recovery; lag not measured because the primary is unreachable",
        )
    notes = []
    if obs.replay_paused:
        notes.append("replay is paused")
    if obs.streaming is False:
        notes.append("WAL receiver is not streaming")
    suffix = f" ({', '.join(notes)})" if notes else ""
    if lag is None:
        behind = "" if obs.bytes_behind is None else f" {obs.bytes_behind} bytes"
        return verdict(
            False,
            Reason.REPLICA_LAGGING,
            f"{obs.name}:{behind} behind the primary and not caught up after {obs.waited:.1f}s;"
            f" it has replayed no transaction since it started, so the lag is unknown{suffix}",
        )
    if lag > max_lag_seconds:
        return verdict(
            False,
            Reason.REPLICA_LAGGING,
            f"{obs.name}: lag {lag:.1f}s exceeds maxLagSeconds {max_lag_seconds:g}{suffix}",
        )
    return verdict(True, None, f"{obs.name}: healthy, lag {lag:.1f}s")
