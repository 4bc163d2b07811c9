"""The pure verdict on a replica: lag arithmetic and the reasons an admin reads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lokifi_storage.api.conditions import Reason
from lokifi_storage.domain.replica_health import (
    ReplicaObservation,
    judge_replica,
    lag_seconds,
)

CURRENT = ReplicaObservation(
    name="replica-1",
    target="lokifi@db-replica:5432/app",
    reachable=True,
    in_recovery=True,
    streaming=True,
    replay_paused=False,
    primary_position_known=True,
    bytes_behind=0,
    caught_up_after=0.0,
    last_replay_age=7200.0,
)


def test_a_replica_at_the_primary_position_has_no_lag_however_old_its_last_replay() -> None:
    # An idle primary: the last replayed transaction is two hours old, the replica is current.
    assert lag_seconds(CURRENT) == 0.0
    assert judge_replica(CURRENT, max_lag_seconds=30).healthy


def test_a_replica_that_catches_up_during_the_wait_lags_by_the_wait_not_by_its_last_replay() -> (
    None
):
    obs = replace(CURRENT, bytes_behind=4096, caught_up_after=0.3, waited=0.3)
    assert lag_seconds(obs) == pytest.approx(0.3)
    assert judge_replica(obs, max_lag_seconds=1).healthy


def test_a_replica_that_does_not_catch_up_lags_by_the_age_of_its_last_replay() -> None:
    obs = replace(CURRENT, caught_up_after=None, last_replay_age=45.0, waited=2.0)
    verdict = judge_replica(obs, max_lag_seconds=30)
    assert verdict.lag_seconds == 45.0
    assert not verdict.healthy
    assert verdict.reason == Reason.REPLICA_LAGGING
    assert "lag 45.0s exceeds maxLagSeconds 30" in verdict.message


def test_the_lag_is_never_less_than_the_time_waited_for_the_replica() -> None:
    obs = replace(CURRENT, caught_up_after=None, last_replay_age=0.5, waited=2.0)
    assert lag_seconds(obs) == 2.0


def test_a_paused_replay_is_named_in_the_message() -> None:
    obs = replace(CURRENT, caught_up_after=None, last_replay_age=90.0, replay_paused=True)
    assert "replay is paused" in judge_replica(obs, 30).message


def test_a_behind_replica_with_no_replay_timestamp_is_unhealthy_with_unknown_lag() -> None:
    obs = replace(CURRENT, caught_up_after=None, last_replay_age=None, bytes_behind=123, waited=2)
    verdict = judge_replica(obs, 30)
    assert not verdict.healthy
    assert verdict.lag_seconds is None
    assert "123 bytes behind" in verdict.message


def test_an_unreachable_replica_keeps_the_probe_reason_and_message() -> None:
    obs = ReplicaObservation(
        name="replica-1",
        target="lokifi@db-replica:5432/app",
        reachable=False,
        error_reason=Reason.AUTHENTICATION_FAILED,
        error_message="replica replica-1 lokifi@db-replica:5432/app: authentication failed",
    )
    verdict = judge_replica(obs, 30)
    assert (verdict.healthy, verdict.reason) == (False, Reason.AUTHENTICATION_FAILED)
    assert verdict.message.startswith("replica-1: replica replica-1 lokifi@db-replica")
    assert verdict.lag_seconds is None


def test_a_promoted_replica_is_unhealthy() -> None:
    verdict = judge_replica(replace(CURRENT, in_recovery=False), 30)
    assert (verdict.healthy, verdict.reason) == (False, Reason.REPLICA_NOT_IN_RECOVERY)


def test_without_the_primary_a_replica_in_recovery_still_serves_reads() -> None:
    obs = replace(CURRENT, primary_position_known=False, caught_up_after=None)
    verdict = judge_replica(obs, 30)
    assert verdict.healthy
    assert verdict.lag_seconds is None
    assert "primary is unreachable" in verdict.message


def test_a_lag_equal_to_the_limit_is_still_healthy() -> None:
    obs = replace(CURRENT, caught_up_after=None, last_replay_age=30.0, waited=2.0)
    assert judge_replica(obs, 30).healthy
