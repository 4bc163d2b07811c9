"""Run `lokifi-storage run` as a subprocess, as a Deployment runs it; drive it with kubectl.

`OperatorProcess` starts the real console script with a kubeconfig (the stack's, or a counting
proxy's), its own health port and a log file, and stops it with SIGTERM like the kubelet does.
The helpers below read objects with `kubectl get -o json` and poll for a condition: every
assertion is about what the API server holds, as an admin would see it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stackfixtures import StackEnv

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The application's tables, as the demo creates them too.
APP_SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "local" / "schema.sql"
CLI = Path(sys.executable).with_name("lokifi-storage")
T = TypeVar("T")
OperatorFactory = Callable[..., "OperatorProcess"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """One `lokifi-storage run` process."""

    def __init__(
        self,
        kubeconfig: str | Path,
        args: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.args = [
            str(CLI),
            "run",
            *args,
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
        ]
        self.log_path = log_path
        self.env = {**os.environ, "KUBECONFIG": self.kubeconfig, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        wait_for(lambda: self.health() is not None, 30, "the operator's health endpoint")
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except OSError:
            return None

    def metrics(self) -> str:
        """The Prometheus exposition text of the operator's /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self, timeout: float = 40) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def kubectl(stack: StackEnv, *args: str, input_text: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        stack.kubectl_argv(*args),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def get_json(stack: StackEnv, namespace: str, *what: str) -> dict[str, Any] | None:
    result = subprocess.run(
        stack.kubectl_argv("-n", namespace, "get", *what, "-o", "json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(f"kubectl get {' '.join(what)} failed: {result.stderr.strip()}")
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The object's status conditions by type."""
    if obj is None:
        return {}
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def render(feature: str, name: str, **values: Any) -> str:
    """A fixture file of tests/e2e/fixtures/<feature>/ with $placeholders filled in."""
    text = (FIXTURES / feature / name).read_text()
    return string.Template(text).substitute({k: str(v) for k, v in values.items()})


def create_secret(stack: StackEnv, namespace: str, name: str, **data: str) -> None:
    """Apply a Secret sent on stdin: its values never stand on a command line."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }
    kubectl(stack, "apply", "-f", "-", input_text=json.dumps(secret))


def events(stack: StackEnv, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events about the LokifiStorage `name`, oldest first."""
    listed = get_json(stack, namespace, "events", "--field-selector", f"involvedObject.name={name}")
    items = (listed or {}).get("items", [])
    return sorted(items, key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or "")


FOLDED = re.compile(r"^(?P<kind>\S+ \S+) x(?P<count>\d+): (?P<objects>.*)$")


def said_actions(stack: StackEnv, namespace: str, name: str) -> list[str]:
    """The actions the Normal Events about `name` report, oldest first, one per action named:
    `N changes: a; b; kind xK: o1, o2, and 3 more` gives a, b, `kind o1`, `kind o2`."""
    said: list[str] = []
    for event in events(stack, namespace, name):
        if event["type"] != "Normal":
            continue
        message = re.sub(r"^\d+ changes: ", "", event["message"])
        for item in message.split("; "):
            folded = FOLDED.match(item)
            if not folded:
                said.append(item)
                continue
            for obj in folded["objects"].split(", "):
                if not re.fullmatch(r"and \d+ more", obj):
                    said.append(f"{folded['kind']} {obj}")
    return said
