"""Many resources in one operator: N postgres-only LokifiStorages (each its own schema) -> time
until all are Ready, the operator's memory, and what a resync round of all of them writes.

    .venv/bin/python bench/operator_scale.py --count 200

One database holds N schemas, each with the application's partitioned `ai_messages`; resource i
manages `s_i.ai_messages` (monthly partitions, premake 3, one index) and writes its own
connection Secret. All N are applied with one `kubectl apply`; the clock runs from there until
every one is Ready for its generation. Then one full resync round (every resource reconciled
once more) is watched through the counting proxy: goal 0 writes.
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from operator_common import (
    LKS,
    OperatorProcess,
    counting_proxy,
    create_database,
    create_secret,
    drop_database,
    install_crd,
    kube_client,
    kubectl,
    ready,
    rss_mib,
    stack,
    token,
    wait_until,
    what,
)

TABLE = """
CREATE TABLE {schema}.ai_messages (
    id bigint GENERATED ALWAYS AS IDENTITY,
    user_id bigint NOT NULL,
    thread_id bigint NOT NULL,
    content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at)
"""

RESOURCE = """\
---
apiVersion: storage.lokifi.ai/v1alpha1
kind: LokifiStorage
metadata: {{name: lks-{i:03d}, namespace: {ns}}}
spec:
  postgres:
    primary: {{secretRef: {{name: lokifi-db, key: url}}}}
    connectionSecret: {{name: conn-{i:03d}}}
    tables:
      - name: s_{i:03d}.ai_messages
        partitionBy: {{column: created_at, interval: month}}
        premake: 3
        indexes:
          - {{name: idx_s_{i:03d}_user_time, columns: [user_id, "created_at DESC"]}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4, help="the operator's --workers")
    parser.add_argument("--crd", default=None, help="CRD file (default crds/lokifistorage.yaml)")
    args = parser.parse_args()

    env = stack()
    install_crd(env, args.crd)
    kube = kube_client(env)
    tag = token()
    ns = f"bench-scale-{tag}"
    dbname = f"bench_scale_{tag}"
    kubectl(env, "create", "namespace", ns)
    database = create_database(env, dbname)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        with psycopg.connect(database.primary_url, autocommit=True) as conn:
            for i in range(args.count):
                schema = sql.Identifier(f"s_{i:03d}")
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                conn.execute(sql.SQL(TABLE).format(schema=schema))
        create_secret(env, ns, "lokifi-db", url=database.primary_url)
        manifest = "".join(RESOURCE.format(i=i, ns=ns) for i in range(args.count))
        assert env.kubeconfig is not None
        with counting_proxy(env.kubeconfig) as proxy:
            operator = OperatorProcess(
                proxy.kubeconfig,
                [
                    "--namespace",
                    ns,
                    "--standalone",
                    "--resync-seconds",
                    "30",
                    "--workers",
                    str(args.workers),
                ],
                workdir / "operator.log",
            ).start()
            assert operator.proc is not None
            idle_rss, _ = rss_mib(operator.proc.pid)
            try:
                started = time.monotonic()
                kubectl(env, "apply", "-f", "-", input_text=manifest)

                def all_ready() -> bool:
                    items = kube.list_objects(LKS, ns)
                    return len(items) == args.count and all(ready(o) for o in items)

                elapsed = wait_until(all_ready, 1800, interval=0.5)
                total = time.monotonic() - started
                rss, peak = rss_mib(operator.proc.pid)
                creation_writes = len(proxy.writes())

                # The first pass ends when Kopf has recorded every handled spec (its
                # last-handled annotation, written after the handler returns): wait for 5 s
                # without any write before watching the next round.
                wait_until(
                    lambda: time.monotonic() - max((w.at for w in proxy.writes()), default=0) > 5,
                    600,
                    interval=0.5,
                )
                settled = time.monotonic() - started
                round_start = time.monotonic()
                log_mark = operator.log().count("reconciled ")
                wait_until(
                    lambda: operator.log().count("reconciled ") >= log_mark + args.count,
                    600,
                    interval=0.5,
                )
                round_seconds = time.monotonic() - round_start
                round_writes = proxy.writes(since=round_start)
            finally:
                operator.stop()
        durations = [float(m) for m in re.findall(r"reconciled \S+ in ([0-9.]+)s", operator.log())]
        with psycopg.connect(database.primary_url) as conn:
            partitions = conn.execute(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 's\\_%'"
            ).fetchone()
    finally:
        kubectl(env, "delete", "namespace", ns, "--wait=false")
        drop_database(env, dbname)

    print(f"{args.count} postgres-only resources, one operator (--workers {args.workers})")
    print(f"  all Ready after          {elapsed:8.1f}s from kubectl apply ({total:.1f}s total)")
    print(f"  per resource             {elapsed / args.count * 1000:8.1f} ms")
    print(f"  last write of the first pass {settled - 5:4.1f}s from kubectl apply")
    print(f"  partitions created       {partitions[0] if partitions else 0:8d}")
    print(
        f"  API writes to get there  {creation_writes:8d}  ({creation_writes / args.count:.1f}"
        " per resource: Secret, status, events, Kopf's last-handled annotation)"
    )
    print(
        f"  operator RSS             {rss:8.1f} MiB"
        f" (peak {peak:.1f}, before any resource {idle_rss:.1f})"
    )
    print(
        f"  next resync round        {len(round_writes):8d} writes for {args.count} reconciles"
        f" (observed over {round_seconds:.0f}s)"
    )
    for kind, count in sorted(collections.Counter(what(w.path) for w in round_writes).items()):
        print(f"      {count:6d}  {kind}")
    print(f"  reconcile p50            {sorted(durations)[len(durations) // 2] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
