"""What the rows of a table are, wherever they went: ids counted and one digest of every field.

The fault campaigns compare the rows before and after a fault: an id missing is a row lost, an
id seen twice a row doubled, and the order-independent digest (a sum of per-row hashes) catches
a row changed in place. Rows are read with COPY ... TO STDOUT (csv) from the live table, the
archive (the `_rows` view when months are packed) and, for exported months, the objects in S3.

An export whose partition is still in the database is a copy waiting for its drop (a kill
between the verified upload and the DROP leaves exactly that, and the next run drops it): its
rows are counted once, from the database, so only exported-then-dropped months come from S3.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import psycopg
import zstandard

COLUMNS = "id, user_id, thread_id, role, content, created_at"


@dataclass
class Rows:
    """Ids (to tell lost from doubled) and a digest of every field of every row."""

    ids: dict[int, int] = field(default_factory=dict)  # id -> times seen
    digest: int = 0

    def add(self, record: list[str]) -> None:
        self.ids[int(record[0])] = self.ids.get(int(record[0]), 0) + 1
        value = hashlib.blake2b("\x1f".join(record).encode(), digest_size=8).digest()
        self.digest = (self.digest + int.from_bytes(value, "big")) % 2**64

    @property
    def count(self) -> int:
        return sum(self.ids.values())

    def compare(self, start: Rows) -> tuple[int, int, bool]:
        """(rows lost, rows doubled, every field equal) against `start`."""
        lost = len(set(start.ids) - set(self.ids))
        doubled = sum(times - 1 for times in self.ids.values() if times > 1)
        same = self.digest == start.digest and self.count == start.count
        return lost, doubled, same


def copy_into(conn: psycopg.Connection[Any], query: str, rows: Rows) -> None:
    """Every row `query` returns, added to `rows`."""
    buffer = io.StringIO()
    with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            buffer.write(bytes(chunk).decode())
    buffer.seek(0)
    for record in csv.reader(buffer):
        rows.add(record)


def database_rows(url: str, table: str = "ai_messages", columns: str = COLUMNS) -> Rows:
    """The rows of `public.<table>` and of its archive (`archive.<table>_rows` or
    `archive.<table>`), read in one snapshot each."""
    rows = Rows()
    with psycopg.connect(url, autocommit=True) as conn:
        copy_into(conn, f"SELECT {columns} FROM public.{table}", rows)
        archived = conn.execute(
            f"SELECT coalesce(to_regclass('archive.{table}_rows'),"
            f" to_regclass('archive.{table}'))::text"
        ).fetchone()
        if archived and archived[0]:
            copy_into(conn, f"SELECT {columns} FROM {archived[0]}", rows)
    return rows


def live_tables(url: str) -> set[tuple[str, str]]:
    """(schema, name) of every table in `public` and `archive`, partitions included."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'archive')"
        ).fetchall()
    return {(schema, name) for schema, name in found}


def read_archived(s3: Any, bucket: str, key: str) -> bytes:
    """An export in DEEP_ARCHIVE is read as its owner would: after a restore request."""
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.InvalidObjectState:
        s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def add_exported_rows(
    s3: Any,
    bucket: str,
    rows: Rows,
    columns: str = COLUMNS,
    still_live: Collection[tuple[str, str]] = (),
) -> None:
    """The rows of every exported month (`<...>/<schema>/<partition>.csv.zst`) in `bucket`, in
    `columns` order, except those whose (schema, partition) is in `still_live`."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".csv.zst"):
                continue
            schema, name = (unquote(s) for s in obj["Key"].removesuffix(".csv.zst").split("/")[-2:])
            if (schema, name) in still_live:
                continue
            body = read_archived(s3, bucket, obj["Key"])
            text = zstandard.ZstdDecompressor().decompressobj().decompress(body).decode()
            reader = csv.reader(io.StringIO(text))
            header = next(reader)
            order = [header.index(c.strip()) for c in columns.split(",")]
            for record in reader:
                rows.add([record[i] for i in order])
