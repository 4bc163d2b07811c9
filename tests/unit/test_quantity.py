"""Sizes as admins write them: Kubernetes quantities for capacity, Redis units for maxmemory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.api.quantity import (
    QuantityError,
    format_bytes,
    parse_kubernetes_quantity,
    parse_redis_memory,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1Ti", 1024**4),
        ("500Gi", 500 * 1024**3),
        ("2T", 2 * 1000**4),
        ("1.5Ki", 1536),
        ("1e3", 1000),
        ("123", 123),
    ],
)
def test_kubernetes_quantities_are_read_as_bytes(text: str, size: int) -> None:
    assert parse_kubernetes_quantity(text) == size


@pytest.mark.parametrize("text", ["1TB", "lots", "", "1 Ti", "-1Gi"])
def test_a_bad_kubernetes_quantity_says_how_to_write_one(text: str) -> None:
    with pytest.raises(QuantityError, match=r"Ti|Gi"):
        parse_kubernetes_quantity(text)


def test_milli_suffix_is_refused_with_the_intended_unit_named() -> None:
    with pytest.raises(QuantityError, match="Mi"):
        parse_kubernetes_quantity("512m")


@pytest.mark.parametrize(
    ("text", "size"),
    [("2gb", 2 * 1024**3), ("2g", 2 * 1000**3), ("512mb", 512 * 1024**2), ("100", 100)],
)
def test_redis_memory_sizes_are_read_as_redis_reads_them(text: str, size: int) -> None:
    assert parse_redis_memory(text) == size


@pytest.mark.parametrize("text", ["2tb", "2 gb", "two", "1.5gb"])
def test_a_bad_redis_memory_size_names_the_units(text: str) -> None:
    with pytest.raises(QuantityError, match="gb"):
        parse_redis_memory(text)


@given(st.integers(min_value=0, max_value=2**60))
def test_binary_quantities_round_trip(size: int) -> None:
    assert parse_kubernetes_quantity(f"{size}Ki") == size * 1024


def test_sizes_are_formatted_short_in_binary_units() -> None:
    assert format_bytes(0) == "0"
    assert format_bytes(1536) == "1.5Ki"
