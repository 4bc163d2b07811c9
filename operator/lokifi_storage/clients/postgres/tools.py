"""pg_dump and pg_restore as child processes, with the password kept off their command line.

A command line is world-readable through /proc and lands in `ps`, audit logs and Kubernetes
events; so the URL is parsed, its password moved into the child's environment (PGPASSWORD, which
only the process owner can read), and the rest rebuilt as a libpq conninfo string for `--dbname`.
No pgpass file is written: CronJob pods run with a read-only root filesystem.

The tools' stderr is kept (the last 64 KiB) for error messages, with the password masked in case
a server ever echoes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from typing import IO

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lokifi_storage.api.conditions import Reason
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.connection import describe_target, libpq_url
from lokifi_storage.domain.job_env import PG_BIN_ENV

__all__ = [
    "ConnectionArgs",
    "ToolProcess",
    "connection_args",
    "pg_dump_argv",
    "pg_restore_argv",
    "tool_path",
    "tool_version",
    "with_database",
]

_SECRET_KEYS = ("password", "sslpassword")
_STDERR_KEEP = 64 * 1024


def tool_path(name: str, pg_bin: str | None = None) -> str:
    """`pg_bin`/name, else $LOKIFI_PG_BIN/name, else the first `name` on PATH."""
    directory = pg_bin or os.environ.get(PG_BIN_ENV)
    if directory:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
        raise ClientError(f"{name} not found in {directory}", reason=Reason.BACKUP_FAILED)
    found = shutil.which(name)
    if found is None:
        raise ClientError(
            f"{name} not found on PATH; install the PostgreSQL client or pass --pg-bin",
            reason=Reason.BACKUP_FAILED,
        )
    return found


def tool_version(path: str) -> str:
    """`pg_dump (PostgreSQL) 15.14` -> `15.14`."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().rsplit(" ", 1)[-1] if out.returncode == 0 else "unknown"


@dataclass(frozen=True)
class ConnectionArgs:
    """A connection split in what may be shown (`conninfo`, `target`) and what may not."""

    conninfo: str
    secret_env: dict[str, str]
    target: str
    password: str | None


def connection_args(url: str) -> ConnectionArgs:
    """Split `url` (postgresql://... or key=value conninfo) into argv-safe and secret parts."""
    target = str(describe_target(url))
    try:
        info = conninfo_to_dict(libpq_url(url))
    except (psycopg.Error, ValueError):
        raise ClientError(
            "database URL could not be parsed", reason=Reason.CONNECTION_FAILED
        ) from None
    password = info.pop("password", None)
    info.pop("sslpassword", None)
    env = {"PGPASSWORD": str(password)} if password else {}
    return ConnectionArgs(
        conninfo=make_conninfo("", **info),
        secret_env=env,
        target=target,
        password=str(password) if password else None,
    )


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database, as a conninfo string."""
    try:
        info = conninfo_to_dict(libpq_url(url))
    except (psycopg.Error, ValueError):
        raise ClientError(
            "database URL could not be parsed", reason=Reason.CONNECTION_FAILED
        ) from None
    info["dbname"] = dbname
    return make_conninfo("", **info)


def pg_dump_argv(path: str, conn: ConnectionArgs, *, snapshot: str | None) -> list[str]:
    """Custom format (what pg_restore -j and selective restore need), uncompressed: the
    compression is ours, chosen by the spec, and pg_dump's zlib would only cost CPU twice."""
    argv = [path, "--format=custom", "--compress=0", "--no-password", f"--dbname={conn.conninfo}"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    return argv


def pg_restore_argv(
    path: str,
    conn: ConnectionArgs,
    *,
    jobs: int = 1,
    source: str | None = None,
    no_owner: bool = False,
    clean: bool = False,
) -> list[str]:
    """--exit-on-error: a restore that skipped an object is a failed restore, not a warning.

    A serial restore runs in one transaction, so a failure (or a corrupt object found halfway
    through the stream) leaves the target as it was; parallel restores cannot (pg_restore
    refuses --single-transaction with --jobs) and may leave a partial restore behind.
    """
    argv = [path, "--no-password", "--exit-on-error", f"--dbname={conn.conninfo}"]
    if jobs > 1:
        argv.append(f"--jobs={jobs}")
    else:
        argv.append("--single-transaction")
    if no_owner:
        argv += ["--no-owner", "--no-acl"]
    if clean:
        argv += ["--clean", "--if-exists"]
    if source is not None:
        argv.append(source)
    return argv


class ToolProcess:
    """A running pg_dump/pg_restore whose stderr is drained in the background.

    Draining matters: a tool that fills its stderr pipe blocks forever, and the stream on the
    other side would look like a hang.
    """

    def __init__(
        self,
        argv: list[str],
        conn: ConnectionArgs,
        *,
        stdin: int | IO[bytes] | None = None,
        stdout: int | IO[bytes] | None = None,
    ) -> None:
        self.name = os.path.basename(argv[0])
        self._password = conn.password
        env = {**os.environ, **conn.secret_env, "PGAPPNAME": "lokifi-storage"}
        self.process = subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env
        )
        self._stderr: deque[bytes] = deque()
        self._stderr_size = 0
        self._reader = threading.Thread(target=self._drain, name=f"{self.name}-stderr", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in iter(stream.readline, b""):
            self._stderr.append(line)
            self._stderr_size += len(line)
            while self._stderr_size > _STDERR_KEEP and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        """Terminate the tool if it still runs (pg_dump's server session ends with it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)

    def stderr_text(self) -> str:
        text = b"".join(self._stderr).decode("utf-8", "replace").strip()
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def failure(self, code: int) -> str:
        """`pg_dump exited with 1: <last lines of stderr>`."""
        lines = [line for line in self.stderr_text().splitlines() if line.strip()]
        detail = " | ".join(lines[-5:]) if lines else "no output"
        return f"{self.name} exited with {code}: {detail}"
