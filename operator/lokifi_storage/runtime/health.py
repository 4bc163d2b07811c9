"""The liveness/readiness endpoint a Deployment probes (`--health-port`).

  GET /healthz   200 while the process works: the event loop answers and, when leading, the
                 Lease was renewed within its duration and Kopf is running. 500 otherwise, so
                 the kubelet restarts a stuck operator.
  GET /readyz    200 when leading with Kopf's watches started, or standing by (a standby is
                 ready to take over); 503 while starting.

Both return a small JSON body ({"role": "leader"|"standby"|"starting", "resources": N}); no
resource names, no Secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

__all__ = ["HealthServer", "HealthState"]


@dataclass
class HealthState:
    """What the probes report; the runner updates it."""

    role: str = "starting"
    kopf_ready: bool = False
    kopf_failed: bool = False
    lease_fresh: Callable[[], bool] = lambda: True
    resources: Callable[[], int] = lambda: 0

    def alive(self) -> bool:
        if self.kopf_failed:
            return False
        return self.role != "leader" or self.lease_fresh()

    def ready(self) -> bool:
        return self.role == "standby" or (self.role == "leader" and self.kopf_ready)


class HealthServer:
    """An aiohttp server on host:port answering /healthz and /readyz."""

    def __init__(self, state: HealthState, host: str, port: int) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def _body(self) -> str:
        return json.dumps({"role": self.state.role, "resources": self.state.resources()})

    async def _healthz(self, _: web.Request) -> web.Response:
        status = 200 if self.state.alive() else 500
        return web.Response(status=status, text=self._body(), content_type="application/json")

    async def _readyz(self, _: web.Request) -> web.Response:
        status = 200 if self.state.ready() else 503
        return web.Response(status=status, text=self._body(), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
