"""When a resource is looked at again."""

from __future__ import annotations

from lokifi_storage.domain.requeue import MAX_RETRY_SECONDS, Outcome, next_delay


def test_a_ready_resource_is_resynced_after_the_resync_period() -> None:
    assert next_delay(Outcome.READY, 0, 180) == 180


def test_a_not_ready_resource_is_retried_with_growing_delays_capped_by_the_resync() -> None:
    delays = [next_delay(Outcome.NOT_READY, n, 60) for n in range(8)]
    assert delays[:3] == [2, 4, 8]
    assert max(d for d in delays if d is not None) == 60
    assert next_delay(Outcome.NOT_READY, 50, 10_000) == MAX_RETRY_SECONDS


def test_an_invalid_spec_is_not_retried() -> None:
    assert next_delay(Outcome.INVALID, 3, 60) is None
