"""Shared pieces of the operator benchmarks (bench/operator_*.py).

They drive the real operator (`lokifi-storage run` as a subprocess) against the local stack's
kube-apiserver, with the e2e tests' helpers (tests/e2e): the process harness, the counting API
proxy, the full example's fixtures. Nothing here is a test; numbers are printed, not asserted.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e")]

from e2e_full import create_example_secrets, example_values  # noqa: E402
from e2e_operator import APP_SCHEMA, OperatorProcess, create_secret, kubectl, render  # noqa: E402
from e2e_proxy import CountingProxy, counting_proxy  # noqa: E402

from lokifi_storage.api.coordinates import GROUP, PLURAL, VERSION  # noqa: E402
from lokifi_storage.clients.kube import KubeClient, Resource  # noqa: E402
from stackfixtures import (  # noqa: E402
    StackEnv,
    create_database,
    drop_database,
    empty_and_delete_bucket,
    ensure_stack,
    release_redis_claims,
)

__all__ = [
    "APP_SCHEMA",
    "LKS",
    "CountingProxy",
    "OperatorProcess",
    "StackEnv",
    "counting_proxy",
    "create_database",
    "create_example_secrets",
    "create_secret",
    "drop_database",
    "empty_and_delete_bucket",
    "example_values",
    "install_crd",
    "kube_client",
    "kubectl",
    "percentile",
    "ready",
    "release_redis_claims",
    "render",
    "rss_mib",
    "stack",
    "token",
    "wait_until",
    "what",
]

LKS = Resource(GROUP, VERSION, PLURAL)


def stack() -> StackEnv:
    """The local stack with Kubernetes, started when it is not up."""
    return ensure_stack(with_kube=True)


def install_crd(env: StackEnv, path: str | None = None) -> None:
    crd = Path(path or os.environ.get("LOKIFI_E2E_CRD") or REPO / "crds" / "lokifistorage.yaml")
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kubectl(env, "wait", "--for=condition=Established", "crd/lokifistorages.storage.lokifi.ai")


def kube_client(env: StackEnv) -> KubeClient:
    return KubeClient.from_environment(env.kubeconfig)


def token() -> str:
    return secrets.token_hex(3)


def ready(obj: dict[str, Any] | None) -> bool:
    """Ready True for the object's current generation."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Seconds until `check()` held; raises TimeoutError after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"not done after {timeout}s")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of `pid` in MiB, from /proc/<pid>/status."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def what(path: str) -> str:
    """`PATCH .../lokifistorages/x/status` -> `lokifistorages/status`: kind and subresource."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
        return "/".join([rest[0], *rest[2:]]) if rest else path
    return path
