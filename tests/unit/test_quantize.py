"""Status gauges are rounded so a busy but steady stack does not re-write status every pass."""

from __future__ import annotations

import pytest

from lokifi_storage.domain.quantize import MIB, lag_for_status, memory_for_status, significant


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1234, 1200), (0.01234, 0.012), (9.96, 10.0), (-47.1, -47.0), (1.0, 1.0)],
)
def test_significant_keeps_two_digits(value: float, expected: float) -> None:
    assert significant(value) == pytest.approx(expected)


def test_sub_second_lag_is_zero_and_longer_lag_keeps_two_digits() -> None:
    assert [lag_for_status(s) for s in (0.0, 0.3, 0.99)] == [0.0, 0.0, 0.0]
    assert lag_for_status(1.04) == 1.0
    assert lag_for_status(45.4) == 45.0
    assert lag_for_status(1234.5) == 1200.0


def test_lag_jitter_of_a_busy_replica_gives_one_status_value() -> None:
    assert {lag_for_status(s) for s in (0.05, 0.2, 0.41, 0.6, 0.8)} == {0.0}
    assert {lag_for_status(s) for s in (12.1, 12.3, 12.4)} == {12.0}


def test_memory_is_whole_mib_when_small_and_two_digits_of_mib_when_large() -> None:
    assert memory_for_status(1_200_000) == MIB
    assert memory_for_status(7 * MIB + 600_000) == 8 * MIB
    assert memory_for_status(int(1.5 * 1024 * MIB)) == 1500 * MIB
    # A GiB-sized node moving by a few MiB keeps one status value.
    assert {memory_for_status(1500 * MIB + d * MIB) for d in (-20, -5, 0, 7, 24)} == {1500 * MIB}
