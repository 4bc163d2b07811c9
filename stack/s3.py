"""S3: moto's server mode on 127.0.0.1:59000, always spoken to through real boto3 over HTTP.

moto keeps objects in memory, so a restart starts with no buckets; tests create their own.
The keys are fixed test values: moto accepts any, and nothing here is reachable off loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from stack.state import StackError, State, port_open, spawn, stop_pid, wait_for

HOST = "127.0.0.1"
PORT = 59000
ENDPOINT = f"http://{HOST}:{PORT}"
ACCESS_KEY = "lokifi-test-access-key"  # fixed test credentials for the local moto server
SECRET_KEY = "lokifi-test-secret-key"  # noqa: S105
REGION = "us-east-1"


def env_values(state: State) -> dict[str, str]:
    return {
        "LOKIFI_S3_ENDPOINT": ENDPOINT,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def _answers() -> bool:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/moto-api/", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _running(state: State) -> bool:
    return state.running_pid("s3") is not None and port_open(PORT)


def up(state: State) -> bool:
    if _running(state):
        return True
    if port_open(PORT):
        raise StackError(f"port {PORT} is taken by a process this stack did not start")
    log = state.sub("s3") / "moto.log"
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    pid = spawn([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(PORT)], log, env=env)
    state.write_pid("s3", pid)
    wait_for("moto S3 server", _answers, 60, log)
    return False


def down(state: State) -> list[str]:
    pid = state.running_pid("s3")
    state.forget_pid("s3")
    if pid is None:
        return []
    stop_pid(pid)
    return ["s3"]


def status(state: State) -> list[tuple[str, bool, str]]:
    return [("s3", _running(state) and _answers(), ENDPOINT)]
