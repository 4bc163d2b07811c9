"""PostgreSQL 15: a primary on 127.0.0.1:55432 and a streaming replica on 55433.

The server refuses to run as root, so every server-side binary runs as the `postgres` OS user
(runuser) in a state subfolder that user owns. fsync and synchronous_commit are off: this stack
exists for fast tests, never for data anyone keeps.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from stack.state import StackError, State, log_tail, pid_alive, port_open, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
PRIMARY_PORT = 55432
REPLICA_PORT = 55433
USER = "lokifi"
OS_USER = "postgres"

SETTINGS = f"""
# --- lokifi local stack (test speed, loopback only) ---
listen_addresses = '{HOST}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def _root(state: State) -> Path:
    """The postgres-owned folder that holds both clusters' data, logs and sockets.

    It is <state>/pg when the postgres user can reach it. A state dir under a private home
    (/root is 0700) cannot be reached, and we would rather not loosen a home directory's mode,
    so the data then lives in /var/lib/lokifi-stack/<hash of the state dir>/pg, with <state>/pg a
    symlink to it.
    """
    link = state.root / "pg"
    if link.is_symlink() or _reachable_by_postgres(state.sub("pg")):
        return link.resolve()
    link.rmdir()
    digest = hashlib.sha256(str(state.root).encode()).hexdigest()[:12]
    target = Path("/var/lib/lokifi-stack") / digest / "pg"
    target.mkdir(parents=True, exist_ok=True)
    _own(target)
    link.symlink_to(target)
    return target


def _own(path: Path) -> None:
    pw = pwd.getpwnam(OS_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o700)


def _reachable_by_postgres(path: Path) -> bool:
    _own(path)
    probe = subprocess.run(
        ["runuser", "-u", OS_USER, "--", "test", "-w", str(path)], check=False, cwd="/"
    )
    return probe.returncode == 0


def _password(state: State) -> str:
    return state.secret("pg_password")


def _as_postgres(argv: list[str], state: State, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL binary as the postgres OS user; the password travels in the env only."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", **env}
    result = subprocess.run(
        ["runuser", "-u", OS_USER, "--", *argv],
        cwd=_root(state),
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(
            f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result


def url(state: State, port: int, dbname: str = "postgres") -> str:
    return f"postgresql://{USER}:{_password(state)}@{HOST}:{port}/{dbname}"


def env_values(state: State) -> dict[str, str]:
    return {
        "LOKIFI_PG_PRIMARY_URL": url(state, PRIMARY_PORT),
        "LOKIFI_PG_REPLICA_URL": url(state, REPLICA_PORT),
        "LOKIFI_PG_BIN": str(PG_BIN),
    }


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _can_query(state: State, port: int, want_recovery: bool) -> bool:
    import psycopg

    try:
        with psycopg.connect(url(state, port), connect_timeout=2) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return row is not None and bool(row[0]) is want_recovery


def _running(data: Path, port: int) -> bool:
    pid = _postmaster_pid(data)
    return pid is not None and pid_alive(pid) and port_open(port)


def _start(state: State, name: str, data: Path, port: int, log: Path) -> None:
    sock = _root(state) / "sock"
    if not sock.exists():
        sock.mkdir()
        shutil.chown(sock, OS_USER, OS_USER)
    if port_open(port):
        raise StackError(f"port {port} is taken by a process this stack did not start")
    _as_postgres(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {sock}",
            "start",
        ],
        state,
    )
    pid = _postmaster_pid(data)
    if pid is None:
        raise StackError(f"{name} started but wrote no postmaster.pid{log_tail(log)}")
    state.write_pid(f"pg-{name}", pid)


def _init_primary(state: State, data: Path) -> None:
    root = _root(state)
    pwfile = root / "initdb.pw"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_password(state) + "\n")
    shutil.chown(pwfile, OS_USER, OS_USER)
    try:
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            state,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    with open(data / "postgresql.conf", "a") as fh:
        fh.write(SETTINGS)


def _init_replica(state: State, data: Path) -> None:
    if data.exists():
        shutil.rmtree(data)
    _as_postgres(
        [
            str(PG_BIN / "pg_basebackup"),
            "-h",
            HOST,
            "-p",
            str(PRIMARY_PORT),
            "-U",
            USER,
            "-D",
            str(data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
        state,
        PGPASSWORD=_password(state),
    )
    with open(data / "postgresql.conf", "a") as fh:
        fh.write(f"port = {REPLICA_PORT}\n")


def up(state: State) -> bool:
    """Start primary then replica; True when both were already running and were reused."""
    root = _root(state)
    primary, replica = root / "primary", root / "replica"
    reused = True
    if not _running(primary, PRIMARY_PORT):
        reused = False
        if not (primary / "PG_VERSION").exists():
            if primary.exists():
                shutil.rmtree(primary)
            _init_primary(state, primary)
        _start(state, "primary", primary, PRIMARY_PORT, root / "primary.log")
    wait_for(
        "postgres primary", lambda: _can_query(state, PRIMARY_PORT, False), 60, root / "primary.log"
    )
    if not _running(replica, REPLICA_PORT):
        reused = False
        if not (replica / "standby.signal").exists():
            _init_replica(state, replica)
        _start(state, "replica", replica, REPLICA_PORT, root / "replica.log")
    wait_for(
        "postgres replica", lambda: _can_query(state, REPLICA_PORT, True), 60, root / "replica.log"
    )
    return reused


def down(state: State) -> list[str]:
    """Stop only the clusters whose pid files we wrote (replica first, then primary)."""
    stopped = []
    root = (state.root / "pg").resolve()
    for name in ("replica", "primary"):
        data = root / name
        pid = state.running_pid(f"pg-{name}")
        if pid is not None and pid == _postmaster_pid(data):
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], state
            )
            stopped.append(f"postgres-{name}")
        state.forget_pid(f"pg-{name}")
    return stopped


def status(state: State) -> list[tuple[str, bool, str]]:
    root = (state.root / "pg").resolve()
    rows = []
    for name, port in (("primary", PRIMARY_PORT), ("replica", REPLICA_PORT)):
        alive = _running(root / name, port)
        rows.append((f"postgres-{name}", alive, f"{HOST}:{port}"))
    return rows
