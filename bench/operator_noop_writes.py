"""API writes per no-op resync: what a resync that finds nothing to change sends to the API server.

    .venv/bin/python bench/operator_noop_writes.py --resyncs 10

The operator talks to the real kube-apiserver through a counting proxy (tests/e2e/e2e_proxy.py).
For each resource shape it waits until the resource is Ready and the first pass's writes have
landed, then counts every POST/PUT/PATCH/DELETE during `--resyncs` resync periods, grouped by
what was written. Goal: 0. Shapes: the full example, and "steady" (postgres primary,
connection Secret, backup and vacuum CronJobs: no part whose observation moves by itself).
Lease renewals are not counted (they are the standby's heartbeat, run with --standalone here).
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path

import psycopg

from operator_common import (
    APP_SCHEMA,
    LKS,
    OperatorProcess,
    counting_proxy,
    create_database,
    create_example_secrets,
    drop_database,
    empty_and_delete_bucket,
    example_values,
    install_crd,
    kube_client,
    kubectl,
    ready,
    release_redis_claims,
    render,
    stack,
    token,
    wait_until,
    what,
)

RESYNC = 2.0


def measure(shape: str, manifest_file: str, resyncs: int) -> None:
    env = stack()
    kube = kube_client(env)
    tag = token()
    ns = f"bench-noop-{tag}"
    kubectl(env, "create", "namespace", ns)
    database = create_database(env, f"bench_noop_{tag}")
    s3 = env.s3_client()
    buckets = {role: f"bench-noop-{role}-{tag}" for role in ("media", "backups", "archive")}
    workdir = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    try:
        with psycopg.connect(database.primary_url, autocommit=True) as conn:
            conn.execute(APP_SCHEMA.read_bytes())
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket)
        create_example_secrets(env, ns, database)
        manifest = render(
            "ready" if manifest_file == "full" else "noop",
            "lokifistorage.yaml",
            **example_values(env, ns, buckets),
        )
        name = "lokifi-prod" if manifest_file == "full" else "steady"
        kubectl(env, "apply", "-f", "-", input_text=manifest)
        assert env.kubeconfig is not None
        with counting_proxy(env.kubeconfig) as proxy:
            operator = OperatorProcess(
                proxy.kubeconfig,
                ["--namespace", ns, "--standalone", "--resync-seconds", str(RESYNC)],
                workdir / "operator.log",
            ).start()
            try:
                wait_until(lambda: ready(kube.get(LKS, ns, name)), 180)
                time.sleep(2 * RESYNC)
                first_pass = len(proxy.writes())
                start = time.monotonic()
                done = operator.log().count("reconciled ")
                wait_until(
                    lambda: operator.log().count("reconciled ") >= done + resyncs, 60 + resyncs * 5
                )
                writes = proxy.writes(since=start)
            finally:
                operator.stop()
        durations = [float(m) for m in re.findall(r"reconciled \S+ in ([0-9.]+)s", operator.log())][
            -resyncs:
        ]
        by_kind = collections.Counter(f"{w.method} {what(w.path)}" for w in writes)
        print(
            f"{shape}: first pass {first_pass} writes; then {len(writes)} writes in "
            f"{resyncs} resyncs = {len(writes) / resyncs:.2f} per resync; "
            f"resync takes {sum(durations) / len(durations):.3f}s on average"
        )
        for kind, count in sorted(by_kind.items()):
            print(f"    {count:4d}  {kind}")
    finally:
        kubectl(env, "delete", "namespace", ns, "--wait=false")
        release_redis_claims(env, [ns])  # the operator stopped before seeing the deletion
        drop_database(env, f"bench_noop_{tag}")
        for bucket in buckets.values():
            empty_and_delete_bucket(env, bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resyncs", type=int, default=10)
    parser.add_argument("--crd", default=None, help="CRD file (default crds/lokifistorage.yaml)")
    args = parser.parse_args()
    install_crd(stack(), args.crd)
    measure("steady (postgres, Secret, CronJobs)", "steady", args.resyncs)
    measure("full example (every part)", "full", args.resyncs)


if __name__ == "__main__":
    main()
