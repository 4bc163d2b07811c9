"""The stack's state directory: where data, logs, pid files, secrets and stack.env live.

Everything the stack starts keeps its files outside the repo so a fresh clone stays clean and
several work trees can share one running stack. Pid files record only what *this* tool started,
so `down` never stops a process somebody else owns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_FILE_NAME = "stack.env"

# The order of variables in stack.env; values come from the services that are up.
ENV_KEYS = (
    "KUBECONFIG",
    "KUBECTL",
    "LOKIFI_PG_PRIMARY_URL",
    "LOKIFI_PG_REPLICA_URL",
    "LOKIFI_PG_BIN",
    "LOKIFI_REDIS_NODES",
    "LOKIFI_REDIS_PASSWORD",
    "LOKIFI_S3_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "LOKIFI_NODE_GATEWAY",
)


class StackError(RuntimeError):
    """A service could not be brought to the wanted state; the message says where to look."""


def state_dir() -> Path:
    """$LOKIFI_STACK_DIR, else ~/.local/state/lokifi-stack (outside every work tree)."""
    configured = os.environ.get("LOKIFI_STACK_DIR")
    path = Path(configured) if configured else Path.home() / ".local" / "state" / "lokifi-stack"
    return path.expanduser().resolve()


@dataclass(frozen=True)
class State:
    """Paths under one state directory."""

    root: Path

    @classmethod
    def default(cls) -> State:
        root = state_dir()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    @property
    def env_file(self) -> Path:
        return self.root / ENV_FILE_NAME

    @property
    def pid_dir(self) -> Path:
        path = self.root / "pids"
        path.mkdir(exist_ok=True)
        return path

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    def sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- secrets ---------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """A random secret generated on first use and kept (mode 0600) for every later run."""
        data = self._read_secrets()
        if name not in data:
            data[name] = secrets.token_hex(16)
            tmp = self.secrets_file.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.secrets_file)
        return data[name]

    def _read_secrets(self) -> dict[str, str]:
        if not self.secrets_file.exists():
            return {}
        loaded: dict[str, str] = json.loads(self.secrets_file.read_text())
        return loaded

    # --- pid files ---------------------------------------------------------------------------

    def pid_file(self, name: str) -> Path:
        return self.pid_dir / f"{name}.pid"

    def write_pid(self, name: str, pid: int) -> None:
        """Record pid with its executable, so a recycled pid is never mistaken for ours."""
        self.pid_file(name).write_text(f"{pid}\n{_exe(pid)}\n")

    def read_pid(self, name: str) -> int | None:
        try:
            return int(self.pid_file(name).read_text().split("\n", 1)[0].strip())
        except (FileNotFoundError, ValueError):
            return None

    def forget_pid(self, name: str) -> None:
        self.pid_file(name).unlink(missing_ok=True)

    def running_pid(self, name: str) -> int | None:
        """The recorded pid if that process is alive and still runs the recorded executable."""
        pid = self.read_pid(name)
        if pid is None or not pid_alive(pid):
            return None
        lines = self.pid_file(name).read_text().splitlines()
        recorded = lines[1] if len(lines) > 1 else ""
        return pid if not recorded or recorded == _exe(pid) else None

    # --- env file ----------------------------------------------------------------------------

    def read_env(self) -> dict[str, str]:
        return read_env_file(self.env_file)

    def write_env(self, values: Mapping[str, str]) -> None:
        """Write stack.env (mode 0600: it holds passwords) with keys in ENV_KEYS order."""
        lines = [f"{key}={values[key]}" for key in ENV_KEYS if key in values]
        tmp = self.env_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, self.env_file)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise `up`/`down` between concurrent callers (several test sessions at once)."""
        with open(self.root / "lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=value lines (no quoting: every value the stack writes is shell-safe)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    """Poll `check` until it holds; on timeout raise with the log's tail to say why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise StackError(f"{what} not ready after {timeout:.0f}s{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(tail)


def spawn(
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a long-running server detached from us (own session, output to its log).

    stdin/stdout/stderr never inherit the caller's pipes, so a test runner that captures this
    command's output does not hang on a server that outlives it.
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: the process started by us and recorded in a pid file."""
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
