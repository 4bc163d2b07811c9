"""A private PostgreSQL 15 server for the partition benchmarks, started and removed by them.

The local stack's server is shared with every test run and has fsync, synchronous_commit and
full_page_writes off; WAL volume and timings measured there would be neither isolated nor
realistic. This one runs with production-like durability (fsync, full-page writes) on its own
port, in a throw-away directory, as the `postgres` OS user (the server refuses root), and is
stopped and deleted when the benchmark ends. It is loopback-only with trust authentication.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("LOKIFI_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
USER = "bench"

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "1GB",
    "maintenance_work_mem": "512MB",
    "work_mem": "64MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "wal_level": "replica",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_parallel_workers_per_gather": "2",
    "autovacuum": "off",  # measurements must not include a vacuum that happened to start
    "jit": "off",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str]) -> None:
    prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *argv], check=True, capture_output=True, text=True, cwd="/")


@contextmanager
def bench_server(extra: dict[str, str] | None = None) -> Iterator[str]:
    """Yield the URL of a fresh server's `postgres` database; stop and delete it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="lokifi-bench-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        pw = pwd.getpwnam(OS_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    os.chmod(root, 0o700)
    port = _free_port()
    settings = {
        **SETTINGS,
        **(extra or {}),
        "port": str(port),
        "unix_socket_directories": str(root),
    }
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())
    try:
        _run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        )
        yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name
