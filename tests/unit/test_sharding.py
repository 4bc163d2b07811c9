"""The pure part of sharding: which shard a resource is in, and a replica's fair share."""

from __future__ import annotations

import collections

from lokifi_storage.runtime.sharding import fair_share, shard_lease_name, shard_of


def test_a_resource_is_always_in_the_same_shard() -> None:
    # Fixed values (sha256 of "namespace/name"): a change of hash would move resources to
    # other replicas on an upgrade, with two versions briefly disagreeing on who owns what.
    assert [shard_of("lokifi", f"lks-{i}", 3) for i in range(8)] == [0, 1, 0, 1, 2, 1, 1, 2]
    assert shard_of("lokifi", "lokifi-prod", 1) == 0


def test_namespace_and_name_both_count() -> None:
    a = [shard_of("team-a", f"lks-{i}", 16) for i in range(64)]
    b = [shard_of("team-b", f"lks-{i}", 16) for i in range(64)]
    assert a != b


def test_resources_spread_evenly_over_the_shards() -> None:
    counts = collections.Counter(shard_of("ns", f"tenant-{i:05d}", 3) for i in range(3000))
    assert set(counts) == {0, 1, 2}
    assert all(900 < n < 1100 for n in counts.values()), counts


def test_fair_share_of_a_replica() -> None:
    assert fair_share(3, 3) == 1
    assert fair_share(3, 2) == 2
    assert fair_share(3, 1) == 3
    assert fair_share(3, 4) == 1
    assert fair_share(3, 0) == 3


def test_shard_leases_are_named_after_the_leader_lease() -> None:
    assert shard_lease_name(2) == "lokifi-storage-operator-shard-2"
