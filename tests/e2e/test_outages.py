"""The outage campaign: each server of the full example fails in turn while the operator runs.

For each outage: the right part condition turns False with the right reason within one resync
interval, the conditions of parts that do not use that server stay as they were, the operator
neither crashes nor exits, and every condition is True again within one interval after the
server is back, with no hand action. Detection and recovery times are printed.

PostgreSQL (primary and replica), S3 and the API server are reached through an OutageProxy
(faults/proxy.py): `down` refuses and resets connections like a stopped server, `blackhole`
accepts and never answers. The shared servers keep running for everybody else and the S3
server keeps its objects. The Redis node is really stopped (SIGTERM), since a cluster tells
its clients where its nodes are and a proxy cannot stand in for one.

`make test` runs each outage for LOKIFI_OUTAGE_SECONDS (default 8); `make faults` runs 30.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, create_secret, wait_for
from faults.proxy import OutageProxy
from test_operator_part_failure import a_replica_port

from lokifi_storage.api import conditions as types
from stackfaults import stopped_redis_node
from stackfixtures import StackEnv

OUTAGE_SECONDS = float(os.environ.get("LOKIFI_OUTAGE_SECONDS", "8"))
RESYNC_SECONDS = 5.0
# A reconcile that meets a refused connection reports at once; give it one pass of slack.
SLACK_SECONDS = 15.0
# A server that accepts and never answers is known only by the client's timeouts: 2 attempts of
# 3 s connect + 5 s read (clients/s3.make_reconcile_client).
S3_SILENCE_SECONDS = 16.0


@dataclass(frozen=True)
class Outage:
    name: str
    condition: str  # the part condition that must turn False
    reasons: frozenset[str]  # with one of these reasons
    may_change: frozenset[str]  # other conditions of parts that use the same server
    silence: float = 0.0  # how long the client waits before it may call the server unreachable


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None, url
    assert parts.port is not None, url
    return parts.hostname, parts.port


def _through(url: str, proxy: OutageProxy) -> str:
    host, port = _endpoint(url)
    return url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}", 1)


def _kubeconfig_through(stack: StackEnv, proxy: OutageProxy, path: Path) -> Path:
    assert stack.kubeconfig is not None
    config: dict[str, Any] = yaml.safe_load(Path(stack.kubeconfig).read_text())
    for cluster in config["clusters"]:
        server = cluster["cluster"]["server"]
        cluster["cluster"]["server"] = server.replace(
            server.split("//", 1)[1].split("/", 1)[0], f"127.0.0.1:{proxy.port}"
        )
    path.write_text(yaml.safe_dump(config))
    return path


def _part_conditions(obj: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    return {
        kind: (c["status"], c.get("reason", ""))
        for kind, c in conditions(obj).items()
        if kind in types.PART_CONDITIONS
    }


def _all_true(full_example: FullExample) -> dict[str, tuple[str, str]] | None:
    obj = full_example.get()
    parts = _part_conditions(obj)
    ready = conditions(obj).get(types.READY, {}).get("status")
    if ready == "True" and parts and all(status == "True" for status, _ in parts.values()):
        return parts
    return None


@contextmanager
def _proxy_fails(proxy: OutageProxy, how: str) -> Iterator[None]:
    getattr(proxy, how)()
    try:
        yield
    finally:
        proxy.up()


def test_each_server_outage_is_detected_by_its_part_and_heals_on_its_own(
    full_example: FullExample, start_operator: OperatorFactory, tmp_path: Path
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    db = full_example.database
    with contextlib.ExitStack() as proxies:
        primary = proxies.enter_context(OutageProxy(*_endpoint(db.primary_url)))
        replica = proxies.enter_context(OutageProxy(*_endpoint(db.replica_url)))
        s3 = proxies.enter_context(OutageProxy(*_endpoint(stack.s3_endpoint)))
        assert stack.kubeconfig is not None
        api_server = yaml.safe_load(Path(stack.kubeconfig).read_text())["clusters"][0]
        api = proxies.enter_context(OutageProxy(*_endpoint(api_server["cluster"]["server"])))

        full_example.create_secrets(skip=("lokifi-db", "lokifi-db-replica-1"))
        create_secret(stack, ns, "lokifi-db", url=_through(db.primary_url, primary))
        create_secret(stack, ns, "lokifi-db-replica-1", url=_through(db.replica_url, replica))
        full_example.apply(s3_endpoint=f"http://127.0.0.1:{s3.port}")
        operator = start_operator(
            ns,
            resync_seconds=RESYNC_SECONDS,
            kubeconfig=_kubeconfig_through(stack, api, tmp_path / "kubeconfig-proxy"),
        )
        baseline = wait_for(lambda: _all_true(full_example), 120, "every condition True")
        redis_port = a_replica_port(full_example)

        storage = frozenset({types.OBJECT_STORAGE_READY, types.BACKUPS_READY})
        primary_users = frozenset(
            {
                types.PARTITIONS_READY,
                types.REPLICAS_READY,
                types.BACKUPS_READY,
                types.CAPACITY_OK,
            }
        )
        unreachable = frozenset({"EndpointUnreachable"})
        outages: list[tuple[Outage, Callable[[], AbstractContextManager[None]]]] = [
            (
                Outage(
                    "postgres primary stopped",
                    types.POSTGRES_READY,
                    frozenset({"ConnectionFailed"}),
                    primary_users,
                ),
                lambda: _proxy_fails(primary, "down"),
            ),
            (
                Outage(
                    "postgres replica stopped",
                    types.REPLICAS_READY,
                    frozenset({"ReplicaUnreachable", "ReplicasDegraded"}),
                    frozenset(),
                ),
                lambda: _proxy_fails(replica, "down"),
            ),
            (
                Outage(
                    "one redis node stopped",
                    types.REDIS_READY,
                    frozenset({"NodeUnreachable", "ClusterNotOk"}),
                    frozenset(),
                ),
                lambda: stopped_redis_node(redis_port),
            ),
            (
                Outage("s3 stopped", types.OBJECT_STORAGE_READY, unreachable, storage),
                lambda: _proxy_fails(s3, "down"),
            ),
            (
                Outage(
                    "s3 black-holed",
                    types.OBJECT_STORAGE_READY,
                    unreachable,
                    storage,
                    silence=S3_SILENCE_SECONDS,
                ),
                lambda: _proxy_fails(s3, "blackhole"),
            ),
        ]

        figures: list[str] = []
        failures: list[str] = []
        for outage, fail in outages:
            seen: dict[str, tuple[str, str]] = {}
            changed_others: set[str] = set()
            detected: float | None = None
            with fail():
                start = time.monotonic()
                watch = RESYNC_SECONDS + SLACK_SECONDS + outage.silence + 5
                while time.monotonic() - start < max(OUTAGE_SECONDS, watch):
                    now = _part_conditions(full_example.get())
                    changed_others.update(
                        f"{kind}={value}"
                        for kind, value in now.items()
                        if value != baseline.get(kind)
                        and kind != outage.condition
                        and kind not in outage.may_change
                    )
                    status, reason = now.get(outage.condition, ("", ""))
                    if detected is None and status == "False":
                        detected = time.monotonic() - start
                        seen[outage.condition] = (status, reason)
                    if detected is not None and time.monotonic() - start >= OUTAGE_SECONDS:
                        break
                    time.sleep(0.5)
                assert operator.proc is not None
                alive_during = operator.proc.poll() is None
            end = time.monotonic()
            healed = wait_for(
                lambda: _all_true(full_example), RESYNC_SECONDS + SLACK_SECONDS + 60, "recovery"
            )
            recovered = time.monotonic() - end
            assert healed
            figures.append(
                f"{outage.name:28s} detect {detected if detected is not None else -1:5.1f}s"
                f"  recover {recovered:5.1f}s  reason {seen.get(outage.condition, ('', '-'))[1]}"
            )
            if detected is None or detected > RESYNC_SECONDS + SLACK_SECONDS + outage.silence:
                failures.append(f"{outage.name}: {outage.condition} False after {detected}s")
            elif seen[outage.condition][1] not in outage.reasons:
                failures.append(
                    f"{outage.name}: reason {seen[outage.condition][1]}, "
                    f"expected one of {sorted(outage.reasons)}"
                )
            if changed_others:
                failures.append(f"{outage.name}: other parts changed: {sorted(changed_others)}")
            if not alive_during or operator.proc.poll() is not None:
                failures.append(f"{outage.name}: the operator exited")
            if recovered > RESYNC_SECONDS + SLACK_SECONDS:
                failures.append(f"{outage.name}: recovered only after {recovered:.1f}s")

        # The API server: nothing can be reported while it is gone; the operator must live
        # through it, and its watch must resume by itself: a spec change made after the outage
        # (through the real API server) is reconciled without a restart.
        with _proxy_fails(api, "down"):
            time.sleep(OUTAGE_SECONDS)
            assert operator.proc is not None
            api_alive = operator.proc.poll() is None
        end = time.monotonic()
        full_example.apply(maxmemory="3gb")

        def caught_up() -> bool:
            obj = full_example.get() or {}
            generation = obj.get("metadata", {}).get("generation")
            observed = obj.get("status", {}).get("observedGeneration")
            return observed == generation and _all_true(full_example) is not None

        wait_for(caught_up, RESYNC_SECONDS + SLACK_SECONDS + 30, "the change after the outage")
        figures.append(
            f"{'kube-apiserver stopped':28s} detect     - "
            f"  recover {time.monotonic() - end:5.1f}s  (operator alive: {api_alive})"
        )
        if not api_alive or operator.proc.poll() is not None:
            failures.append("kube-apiserver stopped: the operator exited")

    print(f"\noutages of {OUTAGE_SECONDS:.0f}s, resync {RESYNC_SECONDS:.0f}s:")
    print("\n".join(figures))
    assert not failures, "\n".join(failures + figures)
