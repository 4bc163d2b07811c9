"""Three replicas with `--shards 3` split the resources by shard Leases: each reconciles exactly
the resources of the shard it holds (a third), a killed replica's shard is taken over within
the Lease time, and no resource is ever reconciled by two replicas at once.

30 postgres-only resources (named so that each shard gets ten) keep this within a minute or two;
bench/operator_scale.py --replicas 3 runs the same with hundreds.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import defaultdict

from e2e_operator import (
    OperatorFactory,
    OperatorProcess,
    create_secret,
    get_json,
    kubectl,
    wait_for,
)

from lokifi_storage.handlers.operator import FINALIZER
from lokifi_storage.runtime.sharding import shard_lease_name, shard_of
from stackfixtures import PgDatabase, StackEnv

SHARDS = 3
PER_SHARD = 10
LEASE_SECONDS = 6
RECONCILED = re.compile(r"reconciled (\S+)/(\S+) in [0-9.]+s: .*\[(\w+) ([0-9.]+)-([0-9.]+)\]")

RESOURCE = """\
---
apiVersion: storage.lokifi.ai/v1alpha1
kind: LokifiStorage
metadata: {{name: {name}, namespace: {ns}}}
spec:
  deletionPolicy: {policy}
  postgres:
    primary: {{secretRef: {{name: db, key: url}}}}
"""


def names_per_shard(ns: str) -> dict[int, list[str]]:
    """The first PER_SHARD names of each shard among lks-0, lks-1, ..."""
    shards: dict[int, list[str]] = {k: [] for k in range(SHARDS)}
    i = 0
    while any(len(v) < PER_SHARD for v in shards.values()):
        name = f"lks-{i}"
        shard = shards[shard_of(ns, name, SHARDS)]
        if len(shard) < PER_SHARD:
            shard.append(name)
        i += 1
    return shards


def identity(process: OperatorProcess) -> str:
    found = re.search(r"serving .* as (\S+): the resources", process.log())
    assert found, process.log()[-2000:]
    return found.group(1)


def holders(stack: StackEnv, ns: str) -> dict[int, str]:
    out = {}
    for k in range(SHARDS):
        lease = get_json(stack, ns, "lease", shard_lease_name(k))
        out[k] = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
    return out


def reconciles(process: OperatorProcess) -> list[tuple[str, str, float, float]]:
    """(name, kind, start, end) of every reconcile in the process's log (wall clock)."""
    return [
        (m.group(2), m.group(3), float(m.group(4)), float(m.group(5)))
        for m in RECONCILED.finditer(process.log())
    ]


def all_ready(stack: StackEnv, ns: str, count: int) -> bool:
    listed = json.loads(kubectl(stack, "-n", ns, "get", "lks", "-o", "json"))
    items = listed.get("items", [])
    return len(items) == count and all(
        (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (o.get("status") or {}).get("conditions") or []
        )
        for o in items
    )


def test_three_replicas_split_the_resources_and_hand_a_dead_ones_shard_over(
    kube_stack: StackEnv,
    crd: str,
    k8s_namespace: str,
    pg_database: PgDatabase,
    start_operator: OperatorFactory,
) -> None:
    stack, ns = kube_stack, k8s_namespace
    create_secret(stack, ns, "db", url=pg_database.primary_url)
    shards = names_per_shard(ns)
    extra = ["--shards", str(SHARDS), "--lease-seconds", str(LEASE_SECONDS), "--workers", "2"]
    replicas = [start_operator(ns, standalone=False, extra=extra) for _ in range(SHARDS)]
    ids = [identity(p) for p in replicas]
    wait_for(
        lambda: sorted(holders(stack, ns).values()) == sorted(ids),
        60,
        "one shard held by each replica",
    )
    by_shard = holders(stack, ns)
    process_of = {k: replicas[ids.index(holder)] for k, holder in by_shard.items()}

    manifest = "".join(
        RESOURCE.format(name=name, ns=ns, policy="Delete" if name == shards[0][0] else "Retain")
        for names in shards.values()
        for name in names
    )
    kubectl(stack, "apply", "-f", "-", input_text=manifest)
    wait_for(lambda: all_ready(stack, ns, SHARDS * PER_SHARD), 180, "all 30 Ready")

    # Each replica reconciled exactly the resources of its own shard: a third each.
    for k, process in process_of.items():
        served = {name for name, *_ in reconciles(process)}
        assert served == set(shards[k]), (k, sorted(served))

    # deletionPolicy Delete: the owner of the resource put the finalizer on (not Kopf).
    deleting = shards[0][0]
    wait_for(
        lambda: (
            FINALIZER
            in ((get_json(stack, ns, "lks", deleting) or {}).get("metadata") or {}).get(
                "finalizers", []
            )
        ),
        30,
        "the finalizer of the Delete-policy resource",
    )

    # Kill the replica of shard 2 without letting it release anything.
    victim = process_of[2]
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.proc.wait(10)
    survivors = [p for p in replicas if p is not victim]
    taker = wait_for(
        lambda: next(
            (p for p in survivors if identity(p) == holders(stack, ns)[2]),
            None,
        ),
        LEASE_SECONDS + 20,
        "shard 2 taken over",
    )
    handed_over = time.time() - killed_at
    assert handed_over < LEASE_SECONDS + LEASE_SECONDS / 3 + 5, handed_over

    # The new owner serves shard 2: a spec change there is reconciled by it.
    changed = shards[2][0]
    kubectl(
        stack,
        "-n",
        ns,
        "patch",
        "lks",
        changed,
        "--type=merge",
        "-p",
        '{"spec": {"postgres": {"pool": {"size": 21}}}}',
    )
    wait_for(
        lambda: any(
            name == changed and start > killed_at for name, _, start, _ in reconciles(taker)
        ),
        60,
        "the change in shard 2 reconciled by the replica that took it over",
    )
    wait_for(lambda: all_ready(stack, ns, SHARDS * PER_SHARD), 60, "all Ready after the change")

    # Deleting the Delete-policy resource: its owner cleans up and lets it go.
    kubectl(stack, "-n", ns, "delete", "lks", deleting, "--wait=false")
    wait_for(lambda: get_json(stack, ns, "lks", deleting) is None, 60, "the deletion to finish")

    # Never two replicas on one resource: the reconciles of one resource by different replicas
    # never overlap in time (the killed replica's last one ended by the time it was killed).
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for index, process in enumerate(replicas):
        for name, _, start, end in reconciles(process):
            spans[name].append((start, end, index))
    for name, found in spans.items():
        for s1, e1, a in found:
            for s2, e2, b in found:
                assert a == b or e1 <= s2 or e2 <= s1, (name, sorted(found))
    assert all(start > killed_at for name, _, start, _ in reconciles(taker) if name in shards[2]), (
        "the new owner started on shard 2 before the old one was gone"
    )
