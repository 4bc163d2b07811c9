"""`backup create`: pg_dump -> compression -> S3 multipart upload, with nothing on disk.

    pg_dump -Fc -Z0 --snapshot=S --(stdout)--> compressor --parts--> uploader thread --> S3
    snapshot S (held open) ------- row counts per table ------------> manifest sidecar

Order of the moments that matter:
1. A REPEATABLE READ transaction exports snapshot S; pg_dump dumps exactly S and the row counts
   are taken in S on the same connection, so the manifest describes the dump.
2. Parts are uploaded while pg_dump still runs (a bounded queue of two parts, so memory stays a
   few parts whatever the database size).
3. After pg_dump exited 0 and every part is in, the manifest is PUT, then the upload completed:
   every visible dump has its manifest (see domain/backup_catalog.py).
4. Any failure or SIGTERM before that aborts the multipart upload (after the uploader stopped,
   so no part lands after the abort) and deletes the manifest if it was written.
5. Retention runs only after the new backup exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lokifi_storage.clients.backup_store import BackupStore, MultipartUpload
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.postgres.backup import SnapshotSession
from lokifi_storage.clients.postgres.tools import (
    ToolProcess,
    connection_args,
    pg_dump_argv,
    tool_path,
    tool_version,
)
from lokifi_storage.domain.backup_catalog import (
    catalog,
    dump_key,
    format_stamp,
    manifest_key,
    schedule_prefix,
)
from lokifi_storage.domain.backup_manifest import TableRows, build_manifest
from lokifi_storage.domain.backup_retention import PrunePlan, plan_prune
from lokifi_storage.domain.upload_parts import MAX_PARTS, part_size
from lokifi_storage.jobs.compression import compressor
from lokifi_storage.jobs.outcome import JobError
from lokifi_storage.jobs.progress import Reporter, human_bytes

__all__ = ["BackupTarget", "CreateOptions", "CreateResult", "create_backup", "prune_schedule"]

READ_SIZE = 1 << 20
QUEUE_PARTS = 2


@dataclass(frozen=True)
class BackupTarget:
    """Where one resource's backups live: bucket (through the store), prefix and name."""

    store: BackupStore
    prefix: str
    name: str


@dataclass(frozen=True)
class CreateOptions:
    schedule: str
    compression: str = "zstd"
    storage_class: str = "STANDARD"
    keep: int | None = None
    part_size: int = 16 * 1024 * 1024
    level: int | None = None
    threads: int = 0
    pg_bin: str | None = None


@dataclass
class CreateResult:
    key: str
    manifest_key: str
    size_bytes: int
    dump_bytes: int
    sha256: str
    parts: int
    tables: list[TableRows]
    seconds: float
    pruned: list[str] = field(default_factory=list)
    prune_error: str | None = None


class _Uploader:
    """Uploads queued parts in order on one thread; the first failure stops it."""

    def __init__(self, upload: MultipartUpload) -> None:
        self._upload = upload
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=QUEUE_PARTS)
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="part-uploader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            try:
                self._upload.upload_part(*item)
            except BaseException as error:  # handed to the main thread
                self.error = error
                self._stop.set()
                return

    def put(self, number: int, data: bytes) -> None:
        while True:
            self.raise_if_failed()
            try:
                self._queue.put((number, data), timeout=0.5)
                return
            except queue.Full:
                continue

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise JobError(str(self.error)) from self.error

    def finish(self) -> None:
        """Wait for every queued part; raise the upload's error if there was one."""
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.5)
                break
            except queue.Full:
                self.raise_if_failed()
        self._thread.join()
        self.raise_if_failed()

    def stop(self) -> None:
        """Stop after the part in flight (bounded wait), dropping queued ones."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=120)


def _count_in_background(session: SnapshotSession) -> tuple[threading.Thread, dict[str, object]]:
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["counts"] = session.count_rows()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=run, name="row-counter", daemon=True)
    thread.start()
    return thread, box


def create_backup(
    url: str,
    target: BackupTarget,
    options: CreateOptions,
    reporter: Reporter,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CreateResult:
    """Dump the database at `url` into one new backup of `options.schedule`."""
    started = clock()
    stamp = format_stamp(started)
    key = dump_key(target.prefix, target.name, options.schedule, stamp, options.compression)
    mkey = manifest_key(target.prefix, target.name, options.schedule, stamp)
    pg_dump = tool_path("pg_dump", options.pg_bin)
    conn = connection_args(url)
    reporter.info(f"backup of {conn.target} to s3://{target.store.bucket}/{key}")

    with SnapshotSession.open(url) as session:
        dump = ToolProcess(
            pg_dump_argv(pg_dump, conn, snapshot=session.snapshot), conn, stdout=subprocess.PIPE
        )
        counter, counted = _count_in_background(session)
        upload: MultipartUpload | None = None
        uploader: _Uploader | None = None
        manifest_written = False
        try:
            upload = target.store.start_upload(
                key,
                storage_class=options.storage_class,
                metadata={
                    "lokifi-schedule": options.schedule,
                    "lokifi-compression": options.compression,
                    "lokifi-format": "pg_dump-custom",
                    "lokifi-server-version": session.server_version,
                    "lokifi-started-at": started.isoformat(timespec="seconds"),
                    "lokifi-manifest": mkey.rsplit("/", 1)[-1],
                },
                content_type="application/octet-stream",
            )
            uploader = _Uploader(upload)
            comp = compressor(options.compression, level=options.level, threads=options.threads)
            digest = hashlib.sha256()
            buffer = bytearray()
            size = raw = 0
            number = 1

            def emit(data: bytes) -> None:
                nonlocal number, size
                if number > MAX_PARTS:
                    raise JobError("the dump needs more than 10,000 parts; raise --part-size-mb")
                digest.update(data)
                size += len(data)
                assert uploader is not None
                uploader.put(number, data)
                number += 1

            with reporter.task(f"dump {conn.target}") as task:
                while chunk := dump.stdout.read(READ_SIZE):
                    raw += len(chunk)
                    task.advance(len(chunk))
                    buffer += comp.compress(chunk)
                    while len(buffer) >= part_size(number, options.part_size):
                        cut = part_size(number, options.part_size)
                        emit(bytes(buffer[:cut]))
                        del buffer[:cut]
                buffer += comp.flush()
                if buffer or number == 1:
                    emit(bytes(buffer))
                buffer.clear()
            code = dump.wait()
            if code != 0:
                raise JobError(dump.failure(code))
            uploader.finish()
            counter.join()
            if "error" in counted:
                raise JobError(str(counted["error"]))
            counts: list[TableRows] = counted["counts"]  # type: ignore[assignment]
            finished = clock()
            manifest = build_manifest(
                dump_key=key,
                schedule=options.schedule,
                compression=options.compression,
                database=session.database,
                server_version=session.server_version,
                pg_dump_version=tool_version(pg_dump),
                storage_class=options.storage_class,
                started_at=started,
                finished_at=finished,
                size_bytes=size,
                sha256=digest.hexdigest(),
                dump_bytes=raw,
                parts=upload.parts,
                counts=counts,
            )
            target.store.put_json(mkey, manifest)
            manifest_written = True
            upload.complete()
        except BaseException:
            dump.stop()
            session.cancel()
            if uploader is not None:
                uploader.stop()
            if upload is not None:
                _abort_quietly(upload, reporter)
            if manifest_written and upload is not None and not upload.completed:
                _delete_quietly(target.store, mkey, reporter)
            raise
        finally:
            dump.stop()
            counter.join(timeout=5)

    seconds = (finished - started).total_seconds()
    reporter.info(
        f"backup complete: {human_bytes(raw)} dumped, {human_bytes(size)} stored "
        f"({options.compression}) in {upload.parts} part(s), {seconds:.1f}s, "
        f"{len(counts)} tables, sha256 {digest.hexdigest()[:16]}..."
    )
    result = CreateResult(
        key=key,
        manifest_key=mkey,
        size_bytes=size,
        dump_bytes=raw,
        sha256=digest.hexdigest(),
        parts=upload.parts,
        tables=counts,
        seconds=seconds,
    )
    if options.keep is not None:
        try:
            plan = prune_schedule(target, options.schedule, options.keep, clock(), reporter)
            result.pruned = [k for group in plan.delete_groups() for k in group]
        except ClientError as error:
            result.prune_error = str(error)
            reporter.info(f"WARNING retention failed (the new backup is complete): {error}")
    return result


def _abort_quietly(upload: MultipartUpload, reporter: Reporter) -> None:
    try:
        upload.abort()
        reporter.info(f"aborted the upload of {upload.key}: no partial backup is left")
    except ClientError as error:
        reporter.info(
            f"WARNING could not abort the upload of {upload.key} ({error}); the next backup "
            "run or the bucket's AbortIncompleteMultipartUpload rule removes it"
        )


def _delete_quietly(store: BackupStore, key: str, reporter: Reporter) -> None:
    try:
        store.delete([key])
    except ClientError as error:
        reporter.info(f"WARNING could not delete {key} ({error}); the next prune removes it")


def prune_schedule(
    target: BackupTarget, schedule: str, keep: int, now: datetime, reporter: Reporter
) -> PrunePlan:
    """Apply retention to one schedule: old backups, orphan sidecars, abandoned uploads."""
    prefix = schedule_prefix(target.prefix, target.name, schedule)
    runs = [e for e in catalog(target.prefix, target.name, target.store.list_objects(prefix))]
    plan = plan_prune(runs, keep, now, uploads=target.store.pending_uploads(prefix))
    for upload in plan.abort:
        target.store.abort_upload(upload)
        reporter.info(f"aborted abandoned upload of {upload.key} from {upload.initiated}")
    for group in plan.delete_groups():
        target.store.delete(group)
    for entry in plan.prune:
        reporter.info(f"pruned backup {entry.stamp} of {schedule} (keep {keep})")
    if plan.orphans:
        reporter.info(f"removed {len(plan.orphans)} orphan sidecar(s) of {schedule}")
    return plan
