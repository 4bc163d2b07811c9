"""Part sizes of a streamed upload: S3's limits hold and a terabyte fits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.domain.upload_parts import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    max_total,
    part_size,
)

MIB = 1024 * 1024


def test_parts_start_at_the_base_and_double_every_thousand() -> None:
    assert part_size(1, 16 * MIB) == 16 * MIB
    assert part_size(1000, 16 * MIB) == 16 * MIB
    assert part_size(1001, 16 * MIB) == 32 * MIB


def test_a_base_below_the_s3_minimum_is_raised_to_it() -> None:
    assert part_size(1, 1) == MIN_PART_SIZE


def test_the_default_base_holds_more_than_a_tebibyte() -> None:
    assert max_total(16 * MIB) > 1024**4


def test_part_numbers_outside_s3_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        part_size(MAX_PARTS + 1, 16 * MIB)


@given(st.integers(1, MAX_PARTS), st.integers(1, 1024 * MIB))
def test_every_part_is_within_s3_part_size_limits(number: int, base: int) -> None:
    assert MIN_PART_SIZE <= part_size(number, base) <= MAX_PART_SIZE
