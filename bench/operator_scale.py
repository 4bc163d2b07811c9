"""Many resources in one operator: N postgres-only LokifiStorages (each its own schema) -> time
until all are Ready, the operator's memory, and what a resync round of all of them writes.

    .venv/bin/python bench/operator_scale.py --count 1000
    .venv/bin/python bench/operator_scale.py --count 300 --replicas 3   # sharded
    .venv/bin/python bench/operator_scale.py --count 1000 --apply-first # the operator's pace alone

One database holds N schemas, each with the application's partitioned `ai_messages`; resource i
manages `s_i.ai_messages` (monthly partitions, premake 3, one index) and writes its own
connection Secret. All N are applied with one `kubectl apply`; the clock runs from its start
until every one is Ready for its generation (with --apply-first the operators start only once
the apply returned, and the clock runs from their start: kubectl's own pace, one GET and one
POST per object, then sets no bound). Then one full resync round (every resource reconciled
once more) is watched through the counting proxy: goal 0 writes. Printed besides: CPU seconds
of the operator process(es) for the first pass and for the round, CPU seconds of the servers
until all are Ready (the operators' own PostgreSQL sessions; kube-apiserver and etcd as whole
processes), API requests of the round,
the peak number of the operators' database sessions, reconcile p50/p95 of first reconciles and
of resyncs. With --replicas N, N operators run with --shards N: resources served by each, any
reconcile of one resource by two replicas at once (from their logs), and the time until a
killed replica's shard is held by another.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lokifi_storage.clients.errors import ClientError
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
    percentile,
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(name: str) -> list[int]:
    """The local processes named exactly `name` (the stack runs its servers on this machine)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def servers_cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each named group of processes (a process gone counts 0)."""
    out = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        out[name] = total
    return out


class ConnectionSampler:
    """Peak number of the operators' sessions on the benchmark's database, sampled, and the CPU
    those sessions' server processes used (PostgreSQL runs on this machine: /proc). A session
    is counted from when it is first seen (at most 0.5 s after it opened); `cpu()` sums what
    each used since, also of sessions ended since."""

    def __init__(self, url: str, dbname: str) -> None:
        self.url, self.dbname = url, dbname
        self.peak = 0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.5):
                pids = [
                    int(pid)
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                        " AND application_name = 'lokifi-storage-operator'",
                        (self.dbname,),
                    ).fetchall()
                ]
                self.peak = max(self.peak, len(pids))
                self._sample(pids)

    def _sample(self, pids: list[int]) -> None:
        with self._guard:
            for pid in pids:
                with contextlib.suppress(OSError):
                    used = cpu_seconds(pid)
                    self._first.setdefault(pid, used)
                    self._last[pid] = used

    def cpu(self) -> float:
        """CPU seconds of the operators' sessions so far (sampled now as well)."""
        with self._guard:
            known = list(self._last)
        self._sample(known)
        with self._guard:
            return sum(self._last[pid] - self._first[pid] for pid in self._last)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


RECONCILED = re.compile(
    r"reconciled (\S+)/(\S+) in ([0-9.]+)s: [^\n]*?(?:\[(\w+) ([0-9.]+)-([0-9.]+)\])?$", re.M
)


def _held(log: str) -> set[str]:
    """The shards a replica holds at the end of its log."""
    held: set[str] = set()
    for line in log.splitlines():
        shard = re.search(r"shard (\d+)", line)
        if shard is None:
            continue
        if "holding shard" in line:
            held.add(shard.group(1))
        elif "released shard" in line or " dropped" in line:
            held.discard(shard.group(1))
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4, help="the operator's --workers")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="the operator's --max-connections-per-server (default: the operator's own)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="N > 1: N replicas, --shards N")
    parser.add_argument(
        "--round-seconds", type=float, default=600, help="longest wait for the resync round"
    )
    parser.add_argument(
        "--resync-seconds", type=float, default=30, help="the operator's --resync-seconds"
    )
    parser.add_argument(
        "--lease-seconds", type=int, default=10, help="the replicas' --lease-seconds (sharded)"
    )
    parser.add_argument(
        "--apply-first",
        action="store_true",
        help="apply every resource before the operator starts; the clock then runs from the"
        " operator's start (its throughput alone, without kubectl's pace)",
    )
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
    lease_seconds = args.lease_seconds
    try:
        with psycopg.connect(database.primary_url, autocommit=True) as conn:
            for i in range(args.count):
                schema = sql.Identifier(f"s_{i:03d}")
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                conn.execute(sql.SQL(TABLE).format(schema=schema))
        create_secret(env, ns, "lokifi-db", url=database.primary_url)
        # In slices of 500: one kubectl call per slice stays inside the helper's time limit
        # on a loaded machine (3,000 objects in one call did not).
        manifests = [
            "".join(RESOURCE.format(i=i, ns=ns) for i in range(k, min(k + 500, args.count)))
            for k in range(0, args.count, 500)
        ]
        assert env.kubeconfig is not None
        flags = ["--namespace", ns, "--resync-seconds", f"{args.resync_seconds:g}"]
        flags += ["--workers", str(args.workers)]
        if args.max_connections is not None:
            flags += ["--max-connections-per-server", str(args.max_connections)]
        if args.replicas > 1:
            flags += [
                "--no-standalone",
                "--lease-namespace",
                ns,
                "--shards",
                str(args.replicas),
                "--lease-seconds",
                str(lease_seconds),
            ]
        else:
            flags.append("--standalone")
        with (
            counting_proxy(env.kubeconfig) as proxy,
            ConnectionSampler(env.pg_primary_url, dbname) as sampler,
        ):
            applied = 0.0
            if args.apply_first:
                started = time.monotonic()
                for manifest in manifests:
                    kubectl(env, "apply", "-f", "-", input_text=manifest)
                applied = time.monotonic() - started
                started = time.monotonic()
            operators = [
                OperatorProcess(proxy.kubeconfig, flags, workdir / f"operator-{k}.log").start()
                for k in range(args.replicas)
            ]
            pids = [o.proc.pid for o in operators if o.proc is not None]
            if args.replicas > 1:
                wait_until(
                    lambda: sum(o.log().count("holding shard") for o in operators) >= args.replicas,
                    120,
                    interval=0.5,
                )
            idle_rss = sum(rss_mib(pid)[0] for pid in pids)
            cpu_idle = sum(cpu_seconds(pid) for pid in pids)
            servers = {name: server_pids(name) for name in ("kube-apiserver", "etcd")}
            servers_idle = servers_cpu(servers)
            pg_idle = sampler.cpu()
            try:
                if not args.apply_first:
                    started = time.monotonic()
                    for manifest in manifests:
                        kubectl(env, "apply", "-f", "-", input_text=manifest)
                    applied = time.monotonic() - started

                def all_ready() -> bool:
                    try:
                        items = kube.list_objects(LKS, ns)
                    except ClientError:  # the shared API server reloading a CRD: ask again
                        return False
                    return len(items) == args.count and all(ready(o) for o in items)

                elapsed = wait_until(all_ready, 1800, interval=0.5)
                total = time.monotonic() - started
                servers_ready = {
                    name: used - servers_idle[name] for name, used in servers_cpu(servers).items()
                }
                pg_ready = sampler.cpu() - pg_idle
                rss = sum(rss_mib(pid)[0] for pid in pids)
                peak = max(rss_mib(pid)[1] for pid in pids)

                def writes(since: float = 0.0) -> list[Any]:
                    """Writes to resources, Secrets and Events; Lease renewals apart."""
                    return [w for w in proxy.writes(since=since) if "/leases/" not in w.path]

                creation_writes = len(writes())
                creation_kinds = collections.Counter(f"{w.method} {what(w.path)}" for w in writes())

                # The first pass ends with its last trailing write (Events are posted after
                # the status patch): wait for 5 s without any write before watching the next
                # round.
                wait_until(
                    lambda: time.monotonic() - max((w.at for w in writes()), default=0) > 5,
                    600,
                    interval=0.5,
                )
                settled = time.monotonic() - started
                first_requests = collections.Counter(
                    f"{r.method} {what(r.path)}"
                    for r in proxy.requests
                    if "watch=" not in r.query and "/leases/" not in r.path
                )
                cpu_first = sum(cpu_seconds(pid) for pid in pids) - cpu_idle
                round_start = time.monotonic()
                cpu_round_start = sum(cpu_seconds(pid) for pid in pids)
                marks = [o.log().count("reconciled ") for o in operators]

                def resynced() -> int:
                    return sum(o.log().count("reconciled ") for o in operators) - sum(marks)

                # A whole round, or what fits in --round-seconds (a stretched interval spreads
                # the round over longer than a benchmark should wait).
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: resynced() >= args.count, args.round_seconds, interval=0.5)
                round_seconds = time.monotonic() - round_start
                round_count = max(1, resynced())
                cpu_round = sum(cpu_seconds(pid) for pid in pids) - cpu_round_start
                round_writes = writes(since=round_start)
                round_requests = [
                    r for r in proxy.requests if r.at >= round_start and "watch=" not in r.query
                ]
                handover = None
                if args.replicas > 1:
                    victim = operators[-1]
                    assert victim.proc is not None
                    held = _held(victim.log())
                    survivors = operators[:-1]
                    marks = [len(o.log()) for o in survivors]
                    killed = time.monotonic()
                    victim.proc.kill()
                    victim.proc.wait(10)
                    wait_until(
                        lambda: any(
                            f"holding shard {k} " in o.log()[mark:]
                            for o, mark in zip(survivors, marks, strict=True)
                            for k in held
                        ),
                        120,
                        interval=0.2,
                    )
                    handover = time.monotonic() - killed
            finally:
                for operator in operators:
                    operator.stop()
        logs = [o.log() for o in operators]
        found = [m for log in logs for m in RECONCILED.finditer(log)]
        first = sorted(float(m.group(3)) for m in found if m.group(4) != "resync")
        resyncs = sorted(float(m.group(3)) for m in found if m.group(4) == "resync")
        served = [len({m.group(2) for m in RECONCILED.finditer(log)}) for log in logs]
        overlaps = 0
        spans: dict[str, list[tuple[float, float, int]]] = collections.defaultdict(list)
        for k, log in enumerate(logs):
            for m in RECONCILED.finditer(log):
                if m.group(5):
                    spans[m.group(2)].append((float(m.group(5)), float(m.group(6)), k))
        for found_spans in spans.values():
            for s1, e1, a in found_spans:
                for s2, e2, b in found_spans:
                    overlaps += a < b and not (e1 <= s2 or e2 <= s1)
        stretched = sum(log.count("interval stretches") for log in logs)
        with psycopg.connect(database.primary_url) as conn:
            partitions = conn.execute(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 's\\_%'"
            ).fetchone()
    finally:
        kubectl(env, "delete", "namespace", ns, "--wait=false")
        drop_database(env, dbname)

    who = "one operator" if args.replicas == 1 else f"{args.replicas} replicas, --shards"
    print(f"{args.count} postgres-only resources, {who} (--workers {args.workers})")
    print(f"  machine load average     {os.getloadavg()[0]:8.1f} (1 min, at the end)")
    print(f"  kubectl apply took       {applied:8.1f}s")
    if args.apply_first:
        print(f"  all Ready after          {total:8.1f}s from the operators' start (applied first)")
    else:
        print(
            f"  all Ready after          {total:8.1f}s from the start of kubectl apply"
            f" ({elapsed:.1f}s after it returned)"
        )
    print(f"  per resource             {total / args.count * 1000:8.1f} ms")
    for kind, number in creation_kinds.most_common():
        print(f"    {kind:40s} {number / args.count:5.2f} per resource")
    print(f"  last write of the first pass {settled - 5:4.1f}s from the clock's start")
    print(
        f"  API requests, first pass {sum(first_requests.values()):8d}"
        f" ({sum(first_requests.values()) / args.count:.1f} per resource, reads included,"
        " watches and Leases apart)"
    )
    for kind, number in first_requests.most_common():
        print(f"    {kind:40s} {number / args.count:5.2f} per resource")
    print(f"  partitions created       {partitions[0] if partitions else 0:8d}")
    print(
        f"  API writes to get there  {creation_writes:8d}  ({creation_writes / args.count:.1f}"
        " per resource, by kind above)"
    )
    print(
        f"  operator RSS             {rss:8.1f} MiB"
        f" (peak {peak:.1f}, at the operators' start {idle_rss:.1f})"
    )
    print(
        f"  CPU, first pass          {cpu_first:8.1f} s ({cpu_first / args.count * 1000:.0f} ms"
        " per resource)"
    )
    print(
        f"  server CPU until Ready   {pg_ready:8.1f} s in the operators' PostgreSQL sessions"
        f" ({pg_ready / args.count * 1000:.0f} ms per resource)"
    )
    for name, used in servers_ready.items():
        print(
            f"    {name:22s} {used:8.1f} s ({used / args.count * 1000:.0f} ms per resource;"
            " the whole process: other clients' requests included)"
        )
    print(
        f"  next resync round        {len(round_writes):8d} writes for {round_count} reconciles"
        f" in {round_seconds:.1f}s"
    )
    for kind, count in sorted(collections.Counter(what(w.path) for w in round_writes).items()):
        print(f"      {count:6d}  {kind}")
    print(
        f"  CPU, resync round        {cpu_round:8.1f} s ({cpu_round / round_count * 1000:.0f} ms"
        " per resource)"
    )
    print(
        f"  API requests, round      {len(round_requests):8d}"
        f" ({len(round_requests) / round_count:.1f} per reconcile, watches excluded)"
    )
    print(
        f"  DB sessions, peak        {sampler.peak:8d} (the operators' on the benchmark database)"
    )
    if first:
        print(
            f"  reconcile p50/p95, first {first[len(first) // 2] * 1000:8.1f} /"
            f" {percentile(first, 95) * 1000:.1f} ms"
        )
    if resyncs:
        print(
            f"  reconcile p50/p95, resync {resyncs[len(resyncs) // 2] * 1000:7.1f} /"
            f" {percentile(resyncs, 95) * 1000:.1f} ms"
        )
    print(f"  interval stretched       {stretched:8d} times (log lines)")
    if args.replicas > 1:
        print(f"  resources per replica    {served}  (Lease renewals are not counted as writes)")
        print(f"  overlapping reconciles   {overlaps:8d} (one resource, two replicas at once)")
        print(f"  shard handed over after  {handover or 0:8.1f}s (SIGKILL;", end="")
        print(f" --lease-seconds {lease_seconds})")


if __name__ == "__main__":
    main()
