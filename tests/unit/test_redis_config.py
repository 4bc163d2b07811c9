"""The Redis settings diff: values compared the way Redis reads them, so nothing is re-sent."""

from __future__ import annotations

import pytest

from lokifi_storage.domain.redis_config import normalize, plan_node_settings, same_value


@pytest.mark.parametrize(
    ("key", "desired", "reported"),
    [
        ("maxmemory", "2gb", "2147483648"),
        ("maxmemory", "2GB", "2147483648"),
        ("maxmemory", "2g", "2000000000"),
        ("maxmemory", "512mb", "536870912"),
        ("maxmemory", "100k", "100000"),
        ("maxmemory", "0", "0"),
        ("maxmemory-policy", "allkeys-LRU", "allkeys-lru"),
        ("lazyfree-lazy-user-del", "YES", "yes"),
        ("notify-keyspace-events", "KEA", "AKE"),
        ("notify-keyspace-events", "Ex", "xE"),
        ("notify-keyspace-events", "", ""),
        ("slowlog-log-slower-than", "-1", "-1"),
    ],
)
def test_a_value_equal_to_what_redis_reports_is_not_a_difference(
    key: str, desired: str, reported: str
) -> None:
    assert same_value(key, desired, reported)


@pytest.mark.parametrize(
    ("key", "desired", "reported"),
    [
        ("maxmemory", "2gb", "2000000000"),
        ("maxmemory-policy", "allkeys-lru", "noeviction"),
        ("notify-keyspace-events", "Ex", "AKE"),
        ("notify-keyspace-events", "KEA", "AKEm"),
        ("hz", "10", "100"),
    ],
)
def test_a_value_redis_reports_differently_is_a_difference(
    key: str, desired: str, reported: str
) -> None:
    assert not same_value(key, desired, reported)


def test_keyspace_flags_normalize_to_a_sorted_set_with_a_expanded() -> None:
    assert normalize("notify-keyspace-events", "AK") == normalize(
        "notify-keyspace-events", "Kg$lshzxetd"
    )


def test_only_differing_keys_are_planned_and_in_spec_order() -> None:
    plan = plan_node_settings(
        "10.0.0.1:6379",
        {"maxmemory": "2gb", "maxmemory-policy": "allkeys-lru", "hz": "20"},
        {"maxmemory": "2147483648", "maxmemory-policy": "noeviction", "hz": "10"},
    )
    assert plan.to_set == (("maxmemory-policy", "allkeys-lru"), ("hz", "20"))
    assert plan.unknown == ()
    assert not plan.empty


def test_a_node_that_does_not_know_a_key_gets_no_config_set_for_it() -> None:
    plan = plan_node_settings("n:1", {"latency-tracking": "yes"}, {})
    assert plan.to_set == ()
    assert plan.unknown == ("latency-tracking",)


def test_a_node_that_already_matches_has_an_empty_plan() -> None:
    assert plan_node_settings("n:1", {"maxmemory": "1mb"}, {"maxmemory": "1048576"}).empty
