"""`lokifi-storage run`: start the operator in this process.

Order of things:
1. the health endpoint starts at once (a standby must answer its probes too);
2. unless `--standalone`, wait for the Lease (runtime/leadership.py): a second process stays
   here, passive, reading the Lease every few seconds and writing nothing;
3. as leader: Kopf (watches and change handlers, handlers/operator.py), the resync loop
   (runtime/controller.py) and the Lease renewal run side by side until SIGTERM/SIGINT, or
   until the Lease is lost, which ends the process with exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import kopf

from lokifi_storage import metrics
from lokifi_storage.builders.cronjobs import DEFAULT_IMAGE, JobSettings
from lokifi_storage.builders.names import LEASE_NAME
from lokifi_storage.clients import redis as redis_client
from lokifi_storage.clients.kube import KubeClient
from lokifi_storage.clients.postgres import pool as pg_pool
from lokifi_storage.clients.postgres.pool import PoolSettings
from lokifi_storage.domain.job_env import JOB_IMAGE_ENV
from lokifi_storage.handlers.operator import build_registry, operator_settings
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.resource import ResourceReconciler
from lokifi_storage.reconcile.results import ReconcilerConfig
from lokifi_storage.runtime.controller import Controller, ControllerConfig
from lokifi_storage.runtime.finalizers import Finalizers
from lokifi_storage.runtime.health import HealthServer, HealthState
from lokifi_storage.runtime.leadership import LeaseConfig, LeaseElector
from lokifi_storage.runtime.sharding import ShardConfig, ShardKeeper

__all__ = ["RunOptions", "default_identity", "run_operator"]

log = logging.getLogger(__name__)


def default_identity() -> str:
    """POD_NAME in a pod; elsewhere host name and a random suffix (unique per process)."""
    pod = os.environ.get("POD_NAME")
    return pod or f"{socket.gethostname()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunOptions:
    """Everything `lokifi-storage run` accepts."""

    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    resync_seconds: float = 300.0
    standalone: bool = False
    lease_namespace: str | None = None
    identity: str = field(default_factory=default_identity)
    health_host: str = "0.0.0.0"  # noqa: S104 - probes come from the kubelet, off-host
    health_port: int = 8080
    metrics_port: int = 9090
    workers: int = 4
    job_image: str | None = None
    kubeconfig: str | None = None
    first_retry_seconds: float = 2.0
    lease_seconds: int = 30
    max_connections_per_server: int = 10
    shards: int = 1  # >= 2: sharding across replicas instead of leader election

    def lease_ns(self) -> str:
        return (
            self.lease_namespace
            or os.environ.get("POD_NAMESPACE")
            or (self.namespaces[0] if self.namespaces else "default")
        )


#: threads that may call the Kubernetes client at once per worker: every part of a reconcile
#: runs in its own thread (reconcile/resource.py), plus the reconcile's own
THREADS_PER_WORKER = 8


async def _serve(options: RunOptions, stop: asyncio.Event) -> int:
    kube = KubeClient.from_environment(
        options.kubeconfig, pool_size=options.workers * THREADS_PER_WORKER + 4
    )
    pg_pool.configure(PoolSettings(max_per_server=options.max_connections_per_server))
    redis_client.configure_sharing(options.max_connections_per_server)
    fence = Fence()
    reconciler = ResourceReconciler(
        kube,
        ReconcilerConfig(
            job_settings=JobSettings(
                image=options.job_image or os.environ.get(JOB_IMAGE_ENV) or DEFAULT_IMAGE
            ),
            instance=options.identity,
            fence=fence,
        ),
    )
    controller = Controller(
        reconciler,
        ControllerConfig(
            resync_seconds=options.resync_seconds,
            first_retry_seconds=options.first_retry_seconds,
            workers=options.workers,
        ),
    )
    keeper: ShardKeeper | None = None
    elector: LeaseElector | None = None
    if options.shards > 1:
        keeper = ShardKeeper(
            kube,
            ShardConfig(
                shards=options.shards,
                namespace=options.lease_ns(),
                identity=options.identity,
                lease_seconds=options.lease_seconds,
                renew_seconds=max(1.0, options.lease_seconds / 3),
            ),
            controller,
        )
        Finalizers(kube, reconciler, controller)
    elif not options.standalone:
        elector = LeaseElector(
            kube,
            LeaseConfig(
                namespace=options.lease_ns(),
                name=LEASE_NAME,
                identity=options.identity,
                lease_seconds=options.lease_seconds,
                renew_seconds=options.lease_seconds / 3,
                retry_seconds=min(2.0, options.lease_seconds / 10),
            ),
            on_lost=fence.lose,
            on_renewed=fence.hold_until,
        )
    health = HealthState(resources=controller.known)
    server = (
        HealthServer(health, options.health_host, options.health_port)
        if options.health_port
        else None
    )
    if server is not None:
        await server.start()
    exporter = metrics.start_metrics_server(options.metrics_port) if options.metrics_port else None
    try:
        if elector is not None:
            health.role = "standby"
            if not await elector.acquire(stop):
                return 0
            health.lease_fresh = lambda: elector.leading
        health.role = "leader"
        if keeper is not None:
            log.info(
                "serving %s as %s: the resources of the shards it holds, of %d",
                _scope(options),
                options.identity,
                options.shards,
            )
        else:
            log.info("leading as %s; serving %s", options.identity, _scope(options))
        return await _lead(options, controller, elector, health, stop, keeper)
    finally:
        if elector is not None:
            await asyncio.to_thread(elector.release)
        if keeper is not None:
            await asyncio.to_thread(keeper.release_all)
        pg_pool.pools().close()
        if server is not None:
            await server.stop()
        if exporter is not None:
            exporter.shutdown()
        kube.close()


def _scope(options: RunOptions) -> str:
    return "all namespaces" if options.all_namespaces else ", ".join(options.namespaces)


async def _lead(
    options: RunOptions,
    controller: Controller,
    elector: LeaseElector | None,
    health: HealthState,
    stop: asyncio.Event,
    keeper: ShardKeeper | None = None,
) -> int:
    lost = asyncio.Event()
    ready = asyncio.Event()
    kopf_stop = asyncio.Event()
    settings = operator_settings(
        workers=max(4, options.workers * 2),
        namespaces=options.namespaces,
        sharded=keeper is not None,
    )
    operator = asyncio.create_task(
        kopf.operator(
            registry=build_registry(sharded=keeper is not None),
            settings=settings,
            standalone=True,
            clusterwide=options.all_namespaces,
            namespaces=list(options.namespaces),
            memo=kopf.Memo(controller=controller, diffbase=settings.persistence.diffbase_storage),
            stop_flag=kopf_stop,
            ready_flag=ready,
        )
    )
    resync = asyncio.create_task(controller.run(kopf_stop))
    renewal = asyncio.create_task(elector.keep(kopf_stop, lost)) if elector else None
    shards = asyncio.create_task(keeper.keep(kopf_stop)) if keeper else None

    async def mark_ready() -> None:
        await ready.wait()
        health.kopf_ready = True
        # Kopf installs its own SIGTERM/SIGINT handlers; take them back so one signal stops
        # Kopf, the resync loop and the Lease renewal together (Kopf through its stop flag).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    marker = asyncio.create_task(mark_ready())
    waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait()), operator}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    kopf_stop.set()
    exit_code = 1 if lost.is_set() else 0
    if operator.done() and operator.exception() is not None and not stop.is_set():
        health.kopf_failed = True
        log.error("Kopf stopped: %s", type(operator.exception()).__name__)
        exit_code = 1
    for task in (operator, resync, renewal, shards, marker, *waiters):
        if task is None or task.done():
            continue
        if task in (operator, resync):
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=30)
        task.cancel()
    return exit_code


def run_operator(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT; the exit code says whether it ended cleanly."""
    # Kopf logs a line per handler call (one per watch event); the controller logs each
    # reconcile itself, so Kopf's per-object lines are kept for warnings and errors.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await _serve(options, stop)

    return asyncio.run(main())
