"""Verification of a backup without any database: what `verifyRestore` does with no target.

The object streams from S3 through the SHA-256 the manifest recorded and the codec (which checks
its frames) into `pg_restore --data-only --file=-`, which reads the whole archive, its table of
contents and every table's data, and writes it out as SQL to a pipe. Nothing is executed: the
output is parsed, the rows of each `COPY ... FROM stdin;` block counted (COPY's text format
escapes newlines, so one line is one row) and compared with the manifest's row counts, which
were taken in the snapshot pg_dump dumped.

What this cannot prove that a restore does: that the schema replays on a server (extensions,
roles, a newer PostgreSQL), and that indexes and constraints build on the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import threading
from collections.abc import Iterable
from typing import IO

from lokifi_storage.clients.backup_store import BackupStore
from lokifi_storage.clients.postgres.tools import ConnectionArgs, ToolProcess, tool_path
from lokifi_storage.domain.backup_catalog import compression_of
from lokifi_storage.jobs.compression import CorruptStreamError, decompressor
from lokifi_storage.jobs.outcome import BackupCorruptError, JobError

__all__ = ["ArchiveReading", "copy_row_counts", "read_archive"]

_IDENT = r'(?:"(?:[^"]|"")+"|[^".\s(]+)'
_COPY = re.compile(rf"^COPY ({_IDENT})\.({_IDENT}) .*FROM stdin;$")
_NO_CONNECTION = ConnectionArgs(conninfo="", secret_env={}, target="archive", password=None)


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def copy_row_counts(lines: Iterable[bytes]) -> dict[str, int]:
    """`schema.table` -> rows, from pg_restore's SQL output."""
    counts: dict[str, int] = {}
    table: str | None = None
    for raw in lines:
        line = raw.rstrip(b"\n")
        if table is not None:
            if line == b"\\.":
                table = None
            else:
                counts[table] += 1
            continue
        if line.startswith(b"COPY "):
            match = _COPY.match(line.decode("utf-8", "replace"))
            if match is not None:
                table = f"{_unquote(match[1])}.{_unquote(match[2])}"
                counts[table] = 0
    return counts


class ArchiveReading:
    """The result of reading one backup object in full."""

    def __init__(self, counts: dict[str, int], size: int) -> None:
        self.counts = counts
        self.size = size


def read_archive(
    store: BackupStore, key: str, expected_sha: str | None, pg_bin: str | None
) -> ArchiveReading:
    """Read backup `key` in full through pg_restore; raise BackupCorruptError for damage and
    JobError when pg_restore cannot read it."""
    reader = store.open(key)
    codec = decompressor(compression_of(key))
    digest = hashlib.sha256()
    argv = [tool_path("pg_restore", pg_bin), "--data-only", "--file=-"]
    tool = ToolProcess(argv, _NO_CONNECTION, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    box: dict[str, dict[str, int]] = {}

    def count(stream: IO[bytes]) -> None:
        box["counts"] = copy_row_counts(iter(stream.readline, b""))

    counter = threading.Thread(target=count, args=(tool.stdout,), name="copy-counter")
    counter.start()
    corrupt: str | None = None
    broken = False
    try:
        for chunk in reader.chunks():
            digest.update(chunk)
            if corrupt is not None:
                continue
            try:
                data = codec.decompress(chunk)
            except CorruptStreamError as error:
                corrupt = str(error)
                continue
            if data and not broken:
                try:
                    tool.stdin.write(data)
                except BrokenPipeError:
                    broken = True  # pg_restore gave up; keep reading to judge the object
        if corrupt is None:
            try:
                codec.finish()
            except CorruptStreamError as error:
                corrupt = str(error)
        with contextlib.suppress(BrokenPipeError):
            tool.stdin.close()
        code = tool.wait()
        counter.join()
    finally:
        tool.stop()
        reader.close()
        counter.join(timeout=5)
    actual = digest.hexdigest()
    if expected_sha and actual != expected_sha:
        corrupt = f"SHA-256 {actual[:16]}... differs from the manifest's {expected_sha[:16]}..."
    if corrupt is not None:
        raise BackupCorruptError(f"backup {key} is corrupt: {corrupt}")
    if code != 0:
        raise JobError(f"backup {key} does not read as an archive: {tool.failure(code)}")
    return ArchiveReading(box.get("counts", {}), reader.size)
