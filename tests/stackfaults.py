"""Break one server of the local stack for a fault test, and always bring it back.

Each helper is a context manager: the server is stopped on entry and restarted on exit with
`python -m stack up --only ...` (which starts only what is not running and waits until it
answers), even when the test fails, so the tests that run after still find the whole stack.
Only processes the stack recorded in its pid files are stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from stackfixtures import run_stack_up, state_dir


def _port_closed(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return False
    except OSError:
        return True


def _wait_closed(host: str, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _port_closed(host, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host}:{port} still answers {timeout}s after it was stopped")
        time.sleep(0.1)


def _recorded_pid(name: str) -> int:
    """The pid the stack recorded for `name`, checked to still run the recorded executable."""
    lines = (state_dir() / "pids" / f"{name}.pid").read_text().splitlines()
    pid = int(lines[0])
    if len(lines) > 1 and lines[1] and os.readlink(f"/proc/{pid}/exe") != lines[1]:
        raise RuntimeError(f"pid {pid} of {name} no longer runs {lines[1]}; not stopping it")
    return pid


@contextmanager
def stopped_pg_replica() -> Iterator[None]:
    """The streaming replica stopped with `pg_ctl stop -m fast` (as the postgres OS user)."""
    data = (state_dir() / "pg").resolve() / "replica"
    pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl"
    try:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                pg_ctl,
                "-D",
                str(data),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            cwd="/",
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        yield
    finally:
        run_stack_up(["pg"])


@contextmanager
def stopped_redis_node(port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """One Redis node stopped with SIGTERM (its pid from the stack's pid file)."""
    pid = _recorded_pid(f"redis-{port}")
    try:
        os.kill(pid, signal.SIGTERM)
        _wait_closed(host, port)
        yield
    finally:
        run_stack_up(["redis"])


__all__ = ["stopped_pg_replica", "stopped_redis_node"]
