"""Two operators under leader election: the leader is killed, or paused past its Lease and
resumed, while its reconcile is moving rows out of DEFAULT. Exactly one writes at any time.

Two `lokifi-storage run` processes share one Lease (a short one). Each round, new rows land in
DEFAULT for two years of months that have no partition yet, so the leader's next pass moves
them out, a transaction per month under the table's partition-work advisory lock. Once the first
month has committed (the audit's event trigger notifies), the process that made it is faulted:
SIGKILL, or SIGSTOP for twice the Lease and then SIGCONT. The other process takes over; a new
process is started as the standby whenever fewer than two run (the killed one, the resumed one
once it has stepped down and exited, one that stepped down on a slow renewal).

Who writes is observed three ways, each attributed to the process that did it:
- Kubernetes: every process talks to the API server through its own counting proxy
  (e2e_proxy.py), so each POST/PUT/PATCH/DELETE (the Lease's included) has a sender and a time;
- PostgreSQL DDL: an event trigger in the test database records each committed DDL statement
  with the backend's client port, mapped to the process that owns that socket (/proc);
- the advisory lock: a sampler reads pg_locks every 50 ms for the sessions holding it.
An overlap is a process writing (or holding the lock) again after another process did: with one
writer at a time, each process's writes form one run in the merged timeline.

Figures (printed): takeovers; time to takeover after a kill and after a SIGSTOP; writes by a
paused leader after it resumed (goal 0); overlaps (goal 0); rows lost and doubled, by id and by
a digest of every field (goal 0, row_digest.py).

`make test` runs 3 rounds of LOKIFI_LEADER_ROWS=20000 rows with a 3 s Lease; `make faults` runs
LOKIFI_LEADER_ROUNDS=20 of 50000 rows. LOKIFI_LEADER_SEED makes the fault order reproducible.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from e2e_operator import (
    APP_SCHEMA,
    OperatorProcess,
    conditions,
    create_secret,
    get_json,
    kubectl,
    wait_for,
)
from e2e_proxy import CountingProxy
from row_digest import COLUMNS, Rows, copy_into, database_rows

from lokifi_storage.api import conditions as types
from lokifi_storage.clients.kube import LEASES, KubeClient
from lokifi_storage.clients.postgres.partitions import PARTITION_LOCK_CLASS
from lokifi_storage.runtime.startup import LEASE_NAME
from stackfixtures import PgDatabase, StackEnv

ROUNDS = int(os.environ.get("LOKIFI_LEADER_ROUNDS", "3"))
ROWS = int(os.environ.get("LOKIFI_LEADER_ROWS", "20000"))
LEASE = int(os.environ.get("LOKIFI_LEADER_LEASE_SECONDS", "3"))
SEED = int(os.environ.get("LOKIFI_LEADER_SEED", "1"))
RESYNC = 2.0
SAMPLE_SECONDS = 0.05

AUDIT = """
CREATE SCHEMA lokifi_audit;
CREATE TABLE lokifi_audit.ddl (at float8, pid int, port int, tag text);
CREATE FUNCTION lokifi_audit.record() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO lokifi_audit.ddl
  VALUES (extract(epoch FROM clock_timestamp()), pg_backend_pid(), inet_client_port(), tg_tag);
  PERFORM pg_notify('lokifi_ddl', inet_client_port()::text);  -- delivered when it commits
END $$;
CREATE EVENT TRIGGER lokifi_audit ON ddl_command_end EXECUTE FUNCTION lokifi_audit.record();
"""


@dataclass
class Incarnation:
    """One operator process, with its own counting proxy and Lease identity."""

    label: str
    process: OperatorProcess
    proxy: CountingProxy
    paused_at: float | None = None
    resumed_at: float | None = None
    ended_at: float | None = None

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None


def _socket_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                parts = line.split()
                if parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Sample:
    at: float  # time.monotonic()
    holder: str  # the Lease's holderIdentity
    lock_holders: tuple[str, ...]  # processes whose sessions hold the table's advisory lock


class Sampler(threading.Thread):
    """Every SAMPLE_SECONDS: the Lease holder, the advisory lock's holders, and which process
    owns each database session (by its client port)."""

    def __init__(self, kube: KubeClient, namespace: str, url: str) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.namespace = namespace
        self.url = url
        self.incarnations: list[Incarnation] = []
        self.samples: list[Sample] = []
        self.port_owner: dict[int, str] = {}
        self.clock_offsets: list[float] = []  # server epoch - monotonic, per sample
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.sample(conn)
                    self.stop.wait(SAMPLE_SECONDS)
        except BaseException as error:  # reported by the test, not lost in a thread
            self.error = error

    def sample(self, conn: psycopg.Connection[Any]) -> None:
        for incarnation in list(self.incarnations):
            if incarnation.alive():
                for port in _socket_ports(incarnation.pid):
                    self.port_owner[port] = incarnation.label
        lease = self.kube.get(LEASES, self.namespace, LEASE_NAME) or {}
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        before = time.monotonic()
        rows = conn.execute(
            "SELECT a.client_port, EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid"
            " AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            f" AND l.classid = {PARTITION_LOCK_CLASS}::oid),"
            " extract(epoch FROM clock_timestamp())"
            " FROM pg_stat_activity a WHERE a.datname = current_database()"
            " UNION ALL SELECT NULL, false, extract(epoch FROM clock_timestamp())"
        ).fetchall()
        after = time.monotonic()
        self.clock_offsets.append(float(rows[-1][2]) - (before + after) / 2)
        holders = tuple(
            sorted({self.port_owner.get(port, f"port {port}") for port, held, _ in rows if held})
        )
        self.samples.append(Sample(after, holder, holders))

    def lock_holder(self) -> tuple[str, ...]:
        return self.samples[-1].lock_holders if self.samples else ()

    def to_monotonic(self, epoch: float) -> float:
        return epoch - statistics.median(self.clock_offsets)


def _overlaps(timeline: list[tuple[float, str]]) -> int:
    """Times a writer came back after another one had written (0 with one writer per term)."""
    runs: list[str] = []
    for _, who in sorted(timeline):
        if not runs or runs[-1] != who:
            runs.append(who)
    seen: set[str] = set()
    back = 0
    for who in runs:
        back += who in seen
        seen.add(who)
    return back


@dataclass
class Campaign:
    stack: StackEnv
    namespace: str
    database: PgDatabase
    logs: Path
    sampler: Sampler
    rng: random.Random
    incarnations: list[Incarnation] = field(default_factory=list)
    takeovers: dict[str, list[float]] = field(default_factory=lambda: {"kill": [], "pause": []})
    resumed_writes: int = 0  # Kubernetes writes of paused leaders after their resume
    resumed_ddl: int = 0  # committed DDL of paused leaders after their resume
    resumed_exits: list[int | None] = field(default_factory=list)
    expected: Rows = field(default_factory=Rows)  # every row inserted so far
    during_move: int = 0
    own_step_downs: int = 0  # not faulted by the campaign
    work_resumed: list[float] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    failures: list[str] = field(default_factory=list)

    def start(self) -> Incarnation:
        label = f"op-{len(self.incarnations)}"
        assert self.stack.kubeconfig is not None
        proxy = CountingProxy(self.stack.kubeconfig).__enter__()
        args = [
            "--namespace",
            self.namespace,
            "--resync-seconds",
            str(RESYNC),
            "--no-standalone",
            "--lease-namespace",
            self.namespace,
            "--lease-seconds",
            str(LEASE),
        ]
        process = OperatorProcess(
            proxy.kubeconfig,
            args,
            self.logs / f"{label}.log",
            env={"POD_NAME": label, "LOKIFI_JOB_IMAGE": "registry.example/lokifi-storage:e2e"},
        )
        incarnation = Incarnation(label, process, proxy)
        self.incarnations.append(incarnation)
        self.sampler.incarnations.append(incarnation)
        process.start()
        return incarnation

    def leader(self) -> Incarnation:
        def current() -> Incarnation | None:
            holder = self.sampler.samples[-1].holder if self.sampler.samples else ""
            return next((i for i in self.incarnations if i.label == holder and i.alive()), None)

        return wait_for(current, LEASE * 10, "a live leader")

    # --- rows -----------------------------------------------------------------------------

    def add_rows(self, round_: int) -> None:
        """ROWS rows over the two years before `1 + 2 * round_` years ago: months with no
        partition yet, so every one of them waits in DEFAULT. They join `expected` as
        inserted (one snapshot, before any of them moves)."""
        with psycopg.connect(self.database.primary_url, autocommit=True) as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM ai_messages").fetchone()
            before = int(row[0]) if row else 0
            conn.execute(
                "INSERT INTO ai_messages (user_id, thread_id, role, content, created_at)"
                " SELECT (g * 7919) %% 2100000, g %% 5000,"
                " CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END,"
                " 'round ' || %(round)s || ' message ' || g || ' ' || md5(g::text),"
                " now() - make_interval(years => 1 + 2 * %(round)s)"
                " - make_interval(secs => (g::float8 / %(rows)s) * 2 * 365 * 86400)"
                " FROM generate_series(1, %(rows)s) g",
                {"round": round_, "rows": ROWS},
            )
            copy_into(
                conn, f"SELECT {COLUMNS} FROM public.ai_messages WHERE id > {before}", self.expected
            )

    def in_default(self) -> int | None:
        """Rows waiting in DEFAULT; None while a paused leader's transaction locks it."""
        with psycopg.connect(self.database.primary_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '300ms'")
            try:
                row = conn.execute("SELECT count(*) FROM ai_messages_default").fetchone()
            except psycopg.errors.LockNotAvailable:
                return None
        return int(row[0]) if row else 0

    def check_rows(self, expected: Rows, after: str) -> None:
        lost, doubled, same = database_rows(self.database.primary_url).compare(expected)
        self.lost += lost
        self.doubled += doubled
        if lost or doubled or not same:
            self.failures.append(f"after {after}: lost {lost}, doubled {doubled}, equal {same}")

    # --- one round --------------------------------------------------------------------------

    def keep_two(self) -> None:
        """A process that stepped down on its own (a renewal slower than the renew deadline, as
        when the shared API server is loaded) exits; start another, so two always run."""
        for incarnation in self.incarnations:
            if incarnation.ended_at is None and not incarnation.alive():
                incarnation.ended_at = time.monotonic()
                self.own_step_downs += 1
        while sum(i.alive() for i in self.incarnations) < 2:
            self.start()

    def mover(self) -> Incarnation | None:
        """The leader, when its session holds the table's advisory lock (a process that has
        just stepped down on its own may still hold it for a moment: that one is not faulted)."""
        if not self.sampler.samples:
            return None
        last = self.sampler.samples[-1]
        return next(
            (
                i
                for i in self.incarnations
                if i.label in last.lock_holders
                and i.label == last.holder
                and i.alive()
                and i.paused_at is None
            ),
            None,
        )

    def round(self, number: int, fault: str) -> None:
        self.keep_two()
        self.leader()
        with psycopg.connect(self.database.primary_url, autocommit=True) as listen:
            listen.execute("LISTEN lokifi_ddl")
            self.add_rows(number)
            # The first month carved out of DEFAULT has committed: the move is under way.
            first = next(listen.notifies(timeout=RESYNC * 10 + 60, stop_after=1), None)
        assert first is not None, f"round {number}: no month was carved out of DEFAULT"
        port = int(first.payload)
        leader = next(
            (i for i in self.incarnations if i.alive() and port in _socket_ports(i.pid)), None
        ) or wait_for(self.mover, 10, f"round {number}: the process moving rows", interval=0.02)
        time.sleep(self.rng.uniform(0.0, 0.3))
        faulted = time.monotonic()
        if fault == "kill":
            os.killpg(leader.pid, signal.SIGKILL)
            assert leader.process.proc is not None
            leader.process.proc.wait()
            leader.ended_at = faulted
        else:
            os.killpg(leader.pid, signal.SIGSTOP)
            leader.paused_at = faulted
        left = self.in_default()
        self.during_move += left is None or left > 0
        took_over = self.takeover(leader, faulted)
        self.takeovers[fault].append(took_over - faulted)
        if fault == "pause":
            time.sleep(max(0.0, faulted + 2 * LEASE - time.monotonic()))
            leader.resumed_at = time.monotonic()
            os.killpg(leader.pid, signal.SIGCONT)
            assert leader.process.proc is not None
            try:
                code: int | None = leader.process.proc.wait(timeout=LEASE * 10)
            except Exception:
                code = None
            leader.ended_at = time.monotonic()
            self.resumed_exits.append(code)
            if code != 1:
                self.failures.append(f"round {number}: resumed {leader.label} exit {code}")
            resumed = leader.proxy.writes(since=leader.resumed_at)
            self.resumed_writes += len(resumed)
            if resumed:
                self.failures.append(
                    f"round {number}: {leader.label} wrote after its resume: "
                    + ", ".join(f"{r.method} {r.path}" for r in resumed[:5])
                )
        wait_for(lambda: self.in_default() == 0, 300, f"round {number}: DEFAULT emptied")
        self.work_resumed.append(time.monotonic() - faulted)
        self.check_rows(self.expected, f"round {number} ({fault})")

    def takeover(self, leader: Incarnation, since: float) -> float:
        """When another live process sent its first Lease write after `since`."""

        def acquired() -> float | None:
            for other in self.incarnations:
                if other is leader or not other.alive():
                    continue
                puts = other.proxy.writes(since=since, path_contains="/leases/")
                if puts:
                    return puts[0].at
            return None

        return wait_for(acquired, LEASE * 10, f"a takeover from {leader.label}", interval=0.02)

    # --- the audit --------------------------------------------------------------------------

    def kube_timeline(self) -> list[tuple[float, str]]:
        return [(r.at, i.label) for i in self.incarnations for r in i.proxy.writes()]

    def ddl_timeline(self) -> tuple[list[tuple[float, str]], int]:
        with psycopg.connect(self.database.primary_url, autocommit=True) as conn:
            rows = conn.execute("SELECT at, port FROM lokifi_audit.ddl ORDER BY at").fetchall()
        timeline: list[tuple[float, str]] = []
        unknown = 0
        for at, port in rows:
            owner = self.sampler.port_owner.get(port)
            if owner is None:
                unknown += 1
                continue
            timeline.append((self.sampler.to_monotonic(at), owner))
        return timeline, unknown

    def lock_timeline(self) -> tuple[list[tuple[float, str]], int]:
        both = sum(len(s.lock_holders) > 1 for s in self.sampler.samples)
        return [(s.at, h) for s in self.sampler.samples for h in s.lock_holders], both


@contextlib.contextmanager
def _campaign(
    stack: StackEnv, namespace: str, database: PgDatabase, logs: Path
) -> Iterator[Campaign]:
    assert stack.kubeconfig is not None
    kube = KubeClient.from_environment(stack.kubeconfig)
    sampler = Sampler(kube, namespace, database.primary_url)
    run = Campaign(stack, namespace, database, logs, sampler, random.Random(SEED))
    sampler.start()
    try:
        yield run
    finally:
        for incarnation in run.incarnations:
            if incarnation.paused_at and not incarnation.resumed_at and incarnation.alive():
                os.killpg(incarnation.pid, signal.SIGCONT)
        for incarnation in sorted(run.incarnations, key=lambda i: i.label == sampler_holder(run)):
            incarnation.process.stop()
            incarnation.proxy.__exit__(None, None, None)
        sampler.stop.set()
        sampler.join(timeout=10)
        kube.close()
        for incarnation in run.incarnations:
            print(f"--- {incarnation.label} ---\n{incarnation.process.log()[-3000:]}")


def sampler_holder(run: Campaign) -> str:
    return run.sampler.samples[-1].holder if run.sampler.samples else ""


def test_one_writer_while_the_leader_is_killed_or_paused_during_a_move(
    kube_stack: StackEnv,
    crd: str,
    k8s_namespace: str,
    pg_database: PgDatabase,
    tmp_path: Path,
) -> None:
    stack, ns = kube_stack, k8s_namespace
    with psycopg.connect(pg_database.primary_url, autocommit=True) as conn:
        conn.execute(APP_SCHEMA.read_bytes())
        conn.execute("CREATE TABLE ai_messages_default PARTITION OF ai_messages DEFAULT")
        conn.execute(AUDIT)
    create_secret(stack, ns, "lokifi-db", url=pg_database.primary_url)
    resource = {
        "apiVersion": "storage.lokifi.ai/v1alpha1",
        "kind": "LokifiStorage",
        "metadata": {"name": "leaders", "namespace": ns},
        "spec": {
            "postgres": {
                "primary": {"secretRef": {"name": "lokifi-db", "key": "url"}},
                "tables": [
                    {
                        "name": "ai_messages",
                        "partitionBy": {"column": "created_at", "interval": "month"},
                        "premake": 2,
                    }
                ],
            }
        },
    }
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(resource))
    first = random.Random(SEED).randrange(2)  # kills and pauses alternate, so a slice has both
    faults = [("kill", "pause")[(first + n) % 2] for n in range(ROUNDS)]
    with _campaign(stack, ns, pg_database, tmp_path) as run:
        run.start()
        run.leader()
        run.start()
        for number, fault in enumerate(faults):
            run.round(number, fault)

        def ready() -> bool:
            obj = get_json(stack, ns, "lokifistorage", "leaders")
            return conditions(obj).get(types.READY, {}).get("status") == "True"

        wait_for(ready, 120, "Ready after the last round")
        run.keep_two()
        time.sleep(2 * SAMPLE_SECONDS)
        assert run.sampler.error is None, run.sampler.error
        kube_overlaps = _overlaps(run.kube_timeline())
        ddl, unattributed = run.ddl_timeline()
        ddl_overlaps = _overlaps(ddl)
        locks, both = run.lock_timeline()
        lock_overlaps = _overlaps(locks)
        for incarnation in run.incarnations:
            if incarnation.resumed_at is None:
                continue
            run.resumed_ddl += sum(
                who == incarnation.label and at >= incarnation.resumed_at for at, who in ddl
            )

    takeovers = len(run.takeovers["kill"]) + len(run.takeovers["pause"])

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        return f"median {statistics.median(values):.2f}s, max {max(values):.2f}s (n={len(values)})"

    print(
        f"\ntwo operators: seed {SEED}, {ROUNDS} rounds of {ROWS} rows, Lease {LEASE}s"
        f" (renew deadline {LEASE * 2 / 3:.1f}s), resync {RESYNC:.0f}s\n"
        f"takeovers {takeovers} after faults, {run.own_step_downs} step-downs on a slow renewal;"
        f" faults landed during a move {run.during_move}/{ROUNDS}\n"
        f"takeover after SIGKILL  {spread(run.takeovers['kill'])}\n"
        f"takeover after SIGSTOP  {spread(run.takeovers['pause'])}\n"
        f"fault to DEFAULT empty  {spread(run.work_resumed)}\n"
        f"writes by a paused leader after its resume: Kubernetes {run.resumed_writes},"
        f" DDL {run.resumed_ddl}; exit codes of resumed leaders {run.resumed_exits}\n"
        f"overlapping writers: Kubernetes {kube_overlaps}, DDL {ddl_overlaps}"
        f" ({len(ddl)} DDL statements, {unattributed} unattributed), advisory lock"
        f" {lock_overlaps} ({both} samples with two holders, {len(run.sampler.samples)} samples)\n"
        f"rows lost {run.lost}, doubled {run.doubled}"
    )
    figures = {
        "takeovers": takeovers,
        "resumed writes": run.resumed_writes,
        "resumed DDL": run.resumed_ddl,
        "Kubernetes overlaps": kube_overlaps,
        "DDL overlaps": ddl_overlaps,
        "lock overlaps": lock_overlaps,
        "two lock holders": both,
        "rows lost": run.lost,
        "rows doubled": run.doubled,
    }
    assert figures == {**{k: 0 for k in figures}, "takeovers": ROUNDS}, run.failures
    assert not run.failures, "\n".join(run.failures)
    assert ddl, "the event trigger recorded no DDL: the audit saw nothing"
    assert unattributed <= len(ddl) // 10, (len(ddl), unattributed)
