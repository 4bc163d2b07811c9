"""`kubectl apply` of the full example -> Ready: latency p50/p95 over N runs.

    .venv/bin/python bench/operator_ready_latency.py --runs 20

One operator process serves the benchmark's namespaces (a Kopf namespace pattern). Each run gets
a fresh namespace, database (with the application's tables) and buckets, so every run does the
whole first reconcile: partitions premade, indexes built, Redis CONFIG SET, lifecycle PUT,
connection Secret and four CronJobs written. The clock starts when `kubectl apply` returns (the
object is stored) and stops when the resource is seen Ready for its generation (polled every
50 ms); the operator's own "reconciled in" time is reported beside it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from operator_common import (
    APP_SCHEMA,
    LKS,
    OperatorProcess,
    create_database,
    create_example_secrets,
    drop_database,
    empty_and_delete_bucket,
    example_values,
    install_crd,
    kube_client,
    kubectl,
    percentile,
    ready,
    release_redis_claims,
    render,
    stack,
    token,
    wait_until,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--crd", default=None, help="CRD file (default crds/lokifistorage.yaml)")
    args = parser.parse_args()

    env = stack()
    install_crd(env, args.crd)
    kube = kube_client(env)
    tag = token()
    namespaces = [f"bench-lat-{tag}-{i:02d}" for i in range(args.runs)]
    for ns in namespaces:
        kubectl(env, "create", "namespace", ns)
    workdir = Path(tempfile.mkdtemp(prefix="bench-lat-"))
    assert env.kubeconfig is not None
    operator = OperatorProcess(
        env.kubeconfig,
        ["--namespace", f"bench-lat-{tag}-*", "--standalone", "--resync-seconds", "300"],
        workdir / "operator.log",
    ).start()
    time.sleep(3)  # let Kopf start its watch of every benchmark namespace

    s3 = env.s3_client()
    latencies: list[float] = []
    apply_times: list[float] = []
    try:
        for i, ns in enumerate(namespaces):
            database = create_database(env, f"bench_lat_{tag}_{i:02d}")
            with psycopg.connect(database.primary_url, autocommit=True) as conn:
                conn.execute(APP_SCHEMA.read_bytes())
            buckets = {
                role: f"bench-{role}-{tag}-{i:02d}" for role in ("media", "backups", "archive")
            }
            for bucket in buckets.values():
                s3.create_bucket(Bucket=bucket)
            create_example_secrets(env, ns, database)
            manifest = render("ready", "lokifistorage.yaml", **example_values(env, ns, buckets))
            before_apply = time.monotonic()
            kubectl(env, "apply", "-f", "-", input_text=manifest)
            applied = time.monotonic()
            seconds = wait_until(lambda ns=ns: ready(kube.get(LKS, ns, "lokifi-prod")), 180)
            apply_times.append(applied - before_apply)
            latencies.append(seconds)
            print(f"run {i + 1:2d}: ready {seconds:6.3f}s after apply", flush=True)
    finally:
        operator.stop()
        for i, ns in enumerate(namespaces):
            kubectl(env, "delete", "namespace", ns, "--wait=false")
            release_redis_claims(env, [ns])  # the operator stopped before seeing the deletion
            drop_database(env, f"bench_lat_{tag}_{i:02d}")
            for role in ("media", "backups", "archive"):
                empty_and_delete_bucket(env, f"bench-{role}-{tag}-{i:02d}")

    reconciles = [
        float(m) for m in re.findall(r"reconciled \S+ in ([0-9.]+)s: ready", operator.log())
    ]
    print()
    print(f"apply -> Ready over {len(latencies)} runs (full example, fresh database and buckets)")
    print(f"  p50  {percentile(latencies, 50):6.3f}s")
    print(f"  p95  {percentile(latencies, 95):6.3f}s")
    print(f"  min  {min(latencies):6.3f}s   max {max(latencies):6.3f}s")
    print(f"  mean {statistics.mean(latencies):6.3f}s")
    if reconciles:
        first = reconciles[: len(latencies)]
        print(
            f"the operator's first reconcile alone: p50 {percentile(first, 50):.3f}s "
            f"p95 {percentile(first, 95):.3f}s"
        )
    print(f"kubectl apply itself: p50 {percentile(apply_times, 50):.3f}s")


if __name__ == "__main__":
    main()
