"""A counting proxy in front of the real kube-apiserver: how many writes did the operator send?

The operator under test gets a kubeconfig pointing at this proxy (plain HTTP on loopback, no
credentials); the proxy forwards every request to the API server with the stack's admin client
certificate and streams the answer back (watches included, bytes untouched). Each request is
recorded (time, method, path), so a test can count the PATCH/POST/PUT/DELETE sent in a window.
Nothing is faked: the API server answers every request itself.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}


@dataclass(frozen=True)
class Request:
    at: float
    method: str
    path: str
    query: str


def _upstream(kubeconfig: Path, workdir: Path) -> tuple[str, ssl.SSLContext]:
    """Server URL and an SSL context with the kubeconfig's CA and client certificate."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])

    def materialize(data_key: str, file_key: str, section: dict[str, Any], name: str) -> str:
        if file_key in section:
            return str(section[file_key])
        path = workdir / name
        path.write_bytes(base64.b64decode(section[data_key]))
        os.chmod(path, 0o600)
        return str(path)

    ctx = ssl.create_default_context(
        cafile=materialize("certificate-authority-data", "certificate-authority", cluster, "ca.crt")
    )
    ctx.load_cert_chain(
        materialize("client-certificate-data", "client-certificate", user, "client.crt"),
        materialize("client-key-data", "client-key", user, "client.key"),
    )
    return str(cluster["server"]).rstrip("/"), ctx


class CountingProxy:
    """`with CountingProxy(kubeconfig) as proxy:`; `proxy.kubeconfig` is for the operator."""

    def __init__(self, kubeconfig: str | Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kubeproxy-")
        self.workdir = Path(self._tmp.name)
        self.upstream, self._ssl = _upstream(Path(kubeconfig), self.workdir)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.kubeconfig = self.workdir / "kubeconfig"

    # --- recording -----------------------------------------------------------------------------

    def _record(self, request: web.Request) -> None:
        with self._lock:
            self.requests.append(
                Request(time.monotonic(), request.method, request.path, request.query_string)
            )

    def writes(self, since: float = 0.0, path_contains: str = "") -> list[Request]:
        """Write requests (POST/PUT/PATCH/DELETE) recorded after `since` (time.monotonic())."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.at >= since and r.method in WRITE_METHODS and path_contains in r.path
            ]

    # --- proxying ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body or None,
            headers=headers,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}
                    ],
                    "users": [{"name": "proxy", "user": {}}],
                    "contexts": [
                        {"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}
                    ],
                    "current-context": "proxy",
                }
            )
        )
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._tmp.cleanup()


@contextmanager
def counting_proxy(kubeconfig: str | Path) -> Iterator[CountingProxy]:
    with CountingProxy(kubeconfig) as proxy:
        yield proxy


class PlainCountingProxy(CountingProxy):
    """The same recording proxy in front of a plain-HTTP server (the stack's S3 server).

    The Host header is forwarded as the client sent it: S3 clients sign it (SigV4), and the
    server checks the signature against the Host it receives. Point the client's endpoint at
    `url`.
    """

    def __init__(self, upstream: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="httpproxy-")
        self.workdir = Path(self._tmp.name)
        self.upstream, self._ssl = upstream.rstrip("/"), None  # type: ignore[assignment]
        self.requests = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = None
        self._session = None
        self.port = 0
        self.kubeconfig = self.workdir / "unused"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["Host"] = request.headers.get("Host", "")
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body or None,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as upstream:
            payload = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=payload,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP},
            )


@contextmanager
def plain_counting_proxy(upstream: str) -> Iterator[PlainCountingProxy]:
    with PlainCountingProxy(upstream) as proxy:
        yield proxy  # type: ignore[misc]
