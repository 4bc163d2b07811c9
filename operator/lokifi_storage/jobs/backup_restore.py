"""`restore`: S3 -> checksum + decompression -> pg_restore, and the guards around the target.

With `--jobs 1` the object streams straight into pg_restore's stdin: nothing touches the disk.
Parallel pg_restore needs a seekable archive, so with `--jobs N>1` the decompressed dump is
written to a temporary file in `--workdir` first (removed afterwards): faster for databases
with several large tables, at the cost of disk space the size of the dump.

Damage is told apart from a failing restore: the object's SHA-256 is checked against the
manifest while it streams, and the codecs check their frames, so a flipped byte is reported as
"backup ... is corrupt" (exit 3) rather than as whatever pg_restore made of the garbage.

`backup verify` restores through here too, into a scratch database (jobs/backup_verify.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any

from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.errors import NotFound
from lokifi_storage.clients.postgres.backup import (
    create_database,
    database_exists,
    managed_partitions,
    server_identity,
    user_table_count,
)
from lokifi_storage.clients.postgres.connection import describe_target
from lokifi_storage.clients.postgres.tools import (
    ToolProcess,
    connection_args,
    pg_restore_argv,
    tool_path,
    with_database,
)
from lokifi_storage.domain.backup_catalog import (
    BackupEntry,
    catalog,
    compression_of,
    name_prefix,
    schedule_prefix,
    sidecar_key,
)
from lokifi_storage.domain.partitions.catalog import BOUNDS_CHECK
from lokifi_storage.jobs.compression import CorruptStreamError, decompressor
from lokifi_storage.jobs.outcome import BackupCorruptError, JobError
from lokifi_storage.jobs.progress import Reporter, human_bytes

__all__ = [
    "RestoreOptions",
    "find_backup",
    "guard_clean",
    "list_backups",
    "prepare_target",
    "read_manifest",
    "restore_backup",
]


@dataclass(frozen=True)
class RestoreOptions:
    jobs: int = 1
    workdir: str | None = None
    no_owner: bool = False
    clean: bool = False
    pg_bin: str | None = None


def list_backups(store: BackupStore, prefix: str, name: str) -> list[BackupEntry]:
    return catalog(prefix, name, store.list_objects(name_prefix(prefix, name)))


def find_backup(
    store: BackupStore, prefix: str, name: str, *, schedule: str | None, key: str | None
) -> str:
    """The dump key to restore: `key` as given, else the newest complete backup."""
    if key is not None:
        compression_of(key)  # refuses keys that are not dumps, with a clear message
        return key
    where = schedule_prefix(prefix, name, schedule) if schedule else name_prefix(prefix, name)
    runs = [e for e in catalog(prefix, name, store.list_objects(where)) if e.complete and e.dump]
    if not runs:
        raise JobError(f"no complete backup under s3://{store.bucket}/{where}")
    newest = max(runs, key=lambda e: e.stamp)  # start time, ms precision; LIST times are s
    assert newest.dump is not None
    return newest.dump.key


def read_manifest(store: BackupStore, key: str) -> dict[str, Any]:
    """The manifest beside dump `key`; a dump without one is not a backup of this tool."""
    mkey = sidecar_key(key, ".manifest.json")
    try:
        return store.get_json(mkey)
    except NotFound:
        raise JobError(
            f"{key} has no manifest ({mkey}): it is not a complete backup of this tool"
        ) from None


class _Sink:
    """Where decompressed bytes go: pg_restore's stdin, or a temporary file for -j."""

    def __init__(self, process: ToolProcess | None, file: IO[bytes] | None) -> None:
        self.process = process
        self.file = file
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        if self.file is not None:
            target = self.file
        else:
            assert self.process is not None
            target = self.process.stdin
        try:
            target.write(data)
        except BrokenPipeError:
            self.broken = True  # pg_restore died; keep reading to judge the object


def restore_backup(
    store: BackupStore,
    key: str,
    to_url: str,
    options: RestoreOptions,
    reporter: Reporter,
    *,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Restore backup `key` into the (existing, empty unless --clean) database at `to_url`."""
    manifest = manifest if manifest is not None else read_manifest(store, key)
    expected_sha = manifest.get("sha256")
    conn = connection_args(to_url)
    pg_restore = tool_path("pg_restore", options.pg_bin)
    reader = store.open(key)
    codec = decompressor(compression_of(key))
    digest = hashlib.sha256()
    reporter.info(f"restore of s3://{store.bucket}/{key} into {conn.target}")
    started = time.monotonic()

    temp: IO[bytes] | None = None
    process: ToolProcess | None = None
    if options.jobs > 1:
        temp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finally
            prefix="lokifi-restore-", suffix=".dump", dir=options.workdir
        )
    else:
        argv = pg_restore_argv(pg_restore, conn, no_owner=options.no_owner, clean=options.clean)
        process = ToolProcess(argv, conn, stdin=subprocess.PIPE)
    sink = _Sink(process, temp)
    corrupt: str | None = None
    try:
        with reporter.task(f"read {key.rsplit('/', 1)[-1]}", total=reader.size) as task:
            for chunk in reader.chunks():
                digest.update(chunk)
                task.advance(len(chunk))
                if corrupt is None:
                    try:
                        sink.write(codec.decompress(chunk))
                    except CorruptStreamError as error:
                        corrupt = str(error)
            if corrupt is None:
                try:
                    codec.finish()
                except CorruptStreamError as error:
                    corrupt = str(error)
        reader.close()
        actual_sha = digest.hexdigest()
        if expected_sha and actual_sha != expected_sha:
            corrupt = (
                f"SHA-256 {actual_sha[:16]}... differs from the manifest's {expected_sha[:16]}..."
            )
        if corrupt is not None:
            raise BackupCorruptError(f"backup {key} is corrupt: {corrupt}")
        if process is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        else:
            assert temp is not None
            temp.flush()
            argv = pg_restore_argv(
                pg_restore,
                conn,
                jobs=options.jobs,
                source=temp.name,
                no_owner=options.no_owner,
                clean=options.clean,
            )
            process = ToolProcess(argv, conn)
        code = process.wait()
        if code != 0:
            raise JobError(process.failure(code))
    finally:
        if process is not None:
            process.stop()
        if temp is not None:
            temp.close()
        reader.close()
    seconds = time.monotonic() - started
    reporter.info(
        f"restore complete: {human_bytes(reader.size)} read in {seconds:.1f}s, checksum matches"
    )
    return manifest


def guard_clean(to_url: str, primary_url: str | None, confirmed: str | None) -> None:
    """`restore --clean` drops and replaces objects: over the primary's database (same server
    by system_identifier, same database as `primary_url`), over any database whose partitions
    the operator made, or when there is no primary to compare with, it needs the database's
    name repeated."""
    target = describe_target(to_url)
    if confirmed is not None and confirmed == target.dbname:
        return
    if primary_url is None:
        raise JobError(
            f"refusing restore --clean over {target}: cannot tell whether it is a LokifiStorage "
            "primary (LOKIFI_PRIMARY_URL is not set). Restore into a new database, set "
            f"LOKIFI_PRIMARY_URL, or pass --replace-database {target.dbname}"
        )
    primary = describe_target(primary_url)
    try:
        target_id, target_db = server_identity(to_url)
    except NotFound:
        return  # not there yet: restore creates it, so it is nobody's primary
    primary_id, primary_db = server_identity(primary_url)
    if (target_id, target_db) == (primary_id, primary_db):
        raise JobError(
            f"refusing restore --clean over {target}: it is the primary database of the "
            f"LokifiStorage ({primary}), and --clean drops and replaces its objects. Restore "
            "into a new database and switch the application over; to really replace it, pass "
            f"--replace-database {target.dbname}"
        )
    if managed_partitions(to_url, BOUNDS_CHECK) > 0:
        # Another LokifiStorage's primary (LOKIFI_PRIMARY_URL names only this one's): its
        # partitions carry the bounds CHECK the operator gives every partition it makes.
        raise JobError(
            f"refusing restore --clean over {target}: its partitions were made by the "
            "lokifi-storage operator, so it is (or was) a LokifiStorage primary, and --clean "
            "drops and replaces its objects. Restore into a new database; to really replace "
            f"it, pass --replace-database {target.dbname}"
        )
    if confirmed is not None:
        raise JobError(
            f"--replace-database {confirmed} does not name the target database {target.dbname}"
        )


def prepare_target(to_url: str, *, create: bool, clean: bool) -> None:
    """Make sure the restore target exists and is empty (unless --clean asks to replace)."""
    target = describe_target(to_url)
    maintenance = with_database(to_url, "postgres")
    if not database_exists(maintenance, target.dbname):
        if not create:
            raise JobError(f"database {target.dbname} does not exist on {target.host}")
        create_database(maintenance, target.dbname)
        return
    if not clean and user_table_count(to_url) > 0:
        raise JobError(
            f"database {target} already has tables; restore into a fresh database, "
            "or pass --clean to drop and replace the objects in the backup"
        )
