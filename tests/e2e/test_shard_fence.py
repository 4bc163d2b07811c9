"""A shard's work stops when its Lease is lost, and only that shard's.

Against the real API server: a ShardKeeper holding two shards hands each resource's pass the
fence of its shard. When another replica holds one shard's Lease (written into the Lease as a
takeover would), the keeper's next round drops that shard: its fence is shut, the statements
registered with it are cancelled at once, and its next write is refused, while the other
shard's fence stays open. A keeper that stops renewing (a paused process) finds its fences shut
by the renew deadline of its last renewal, with no round having run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from e2e_operator import kubectl

from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.reconcile.fence import LeadershipLost
from lokifi_storage.reconcile.resource import ResourceReconciler
from lokifi_storage.runtime.controller import Controller
from lokifi_storage.runtime.sharding import ShardConfig, ShardKeeper, shard_lease_name, shard_of
from stackfixtures import StackEnv


def _resource_in(shard: int, shards: int) -> str:
    return next(f"r{i}" for i in range(1000) if shard_of("ns", f"r{i}", shards) == shard)


@pytest.fixture
def keeper(kube_stack: StackEnv, k8s_namespace: str) -> Iterator[ShardKeeper]:
    """A replica of two shards, its Leases in the test's namespace; it lets go of them after."""
    assert kube_stack.kubeconfig is not None
    kube = KubeClient.from_environment(kube_stack.kubeconfig)
    config = ShardConfig(
        shards=2, namespace=k8s_namespace, identity="a", lease_seconds=6, renew_seconds=1.0
    )
    made = ShardKeeper(kube, config, Controller(ResourceReconciler(kube)))
    yield made
    made.release_all()


def test_a_lost_shard_shuts_its_fence_and_cancels_its_work_only(
    keeper: ShardKeeper, kube_stack: StackEnv, k8s_namespace: str
) -> None:
    assert keeper.round()  # one shard a round
    assert keeper.round()
    assert keeper.held == {0, 1}
    lost_one, kept_one = _resource_in(0, 2), _resource_in(1, 2)
    fence = keeper.fence_for("ns", lost_one)
    other = keeper.fence_for("ns", kept_one)
    assert fence is not other
    fence.check("a write while the shard is held")  # does not raise
    cancelled: list[str] = []

    with fence.watch(lambda: cancelled.append("statement")):
        # Another replica holds shard 0 now (a takeover after a partition of the network).
        lease = {
            "spec": {
                "holderIdentity": "b",
                "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            }
        }
        kubectl(
            kube_stack, "-n", k8s_namespace, "patch", "lease", shard_lease_name(0),
            "--type=merge", "-p", json.dumps(lease),
        )  # fmt: skip
        keeper.round()

    assert keeper.held == {1}
    assert cancelled == ["statement"]
    assert fence.lost
    with pytest.raises(LeadershipLost):
        fence.check("a write after the shard was taken over")
    assert not other.lost
    other.check("a write of the shard still held")
    # A pass that starts now for the lost shard gets a shut fence, never an open one.
    assert keeper.fence_for("ns", lost_one).lost
    keeper.release_all()
    assert other.lost


def test_a_keeper_that_stops_renewing_finds_its_fences_shut_by_the_deadline(
    keeper: ShardKeeper,
) -> None:
    keeper.round()
    [held] = keeper.held
    fence = keeper.fence_for("ns", _resource_in(held, 2))
    renewed = time.monotonic()
    assert not fence.lost
    # No round runs (the process is stopped): the fence shuts by itself at the renew deadline.
    while not fence.lost and time.monotonic() - renewed < 10:
        time.sleep(0.1)
    waited = time.monotonic() - renewed
    assert fence.lost
    assert waited <= keeper.config.renew_deadline + 0.5
    assert waited >= keeper.config.renew_deadline - 0.5
