"""GitOps health of real objects: Argo CD's health script and kstatus, each run by the code
those tools run.

`argocd_health` runs deploy/argocd/health.lua in gopher-lua, the Lua 5.1 virtual machine Argo
CD embeds, set up the way Argo CD sets it up (only the package, base and table libraries; the
object's JSON as the global `obj`; one second to finish; an unknown status reads as Unknown).
`kstatus` asks sigs.k8s.io/cli-utils' status.Compute, which Flux and kpt use. Both are small Go
programs in tools/gitops, built once from the Go module proxy and cached.
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "deploy" / "argocd" / "health.lua"
GITOPS_BUILD = REPO / "tools" / "gitops" / "build.sh"


@dataclass(frozen=True)
class Health:
    """What a health checker said: its status and message."""

    status: str
    message: str


@functools.cache
def gitops_tools() -> Path:
    """The folder holding the kstatus and argocd-health binaries (instant once cached)."""
    result = subprocess.run(
        ["bash", str(GITOPS_BUILD)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"building the GitOps health checkers failed: {result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def _run(tool: str, obj: dict[str, Any], *args: str) -> Health:
    result = subprocess.run(
        [str(gitops_tools() / tool), *args],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{tool} failed: {result.stderr.strip()}")
    out = json.loads(result.stdout)
    return Health(str(out["status"]), str(out["message"]))


def argocd_health(obj: dict[str, Any], script: Path = HEALTH_LUA) -> Health:
    """The health `script` gives the object `obj`, run as Argo CD runs it."""
    return _run("argocd-health", obj, str(script))


def kstatus(obj: dict[str, Any]) -> Health:
    """What sigs.k8s.io/cli-utils' status.Compute says of `obj` (Current, InProgress, ...)."""
    return _run("kstatus", obj)
