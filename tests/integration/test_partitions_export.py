"""Export before drop, against the real PostgreSQL primary and the stack's S3 server."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import psycopg
import pytest
import zstandard
from partitionkit import (
    NOW,
    create_messages_table,
    fingerprint,
    insert_messages,
    jobs_env,
    month_start,
    partition_db,
    partitions_of,
    query,
    table_spec,
)
from typer.testing import CliRunner

from lokifi_storage.api.spec import TableSpec
from lokifi_storage.cli import app
from lokifi_storage.clients.errors import Conflict
from lokifi_storage.clients.s3 import make_client
from lokifi_storage.clients.s3_export import ExportStore
from lokifi_storage.domain.conditions import status_json
from lokifi_storage.domain.partitions.actions import ExportPartition
from lokifi_storage.domain.partitions.pack import PackPartition
from lokifi_storage.jobs.export_proof import ExportNotVerifiedError
from lokifi_storage.jobs.partition_compress import pack_month
from lokifi_storage.jobs.partition_export import (
    ExportConflictError,
    ExportResult,
    export_and_drop,
)
from lokifi_storage.jobs.partitions_args import plans_for
from lokifi_storage.reconcile.partitions import reconcile_tables
from stackfixtures import PgDatabase, StackEnv

# October 2024 ends on 2024-11-01: archived 395 days later, compressed after 404, exported
# and dropped after 441 (archive.afterDays 365, compressAfterDays 400, dropAfterDays 440).
ARCHIVE_TIME = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
COMPRESS_TIME = dt.datetime(2025, 12, 10, tzinfo=dt.UTC)
OCTOBER = "(SELECT * FROM ai_messages WHERE created_at < '2024-11-01') AS m"


def lifecycle_spec(bucket: str, storage_class: str = "DEEP_ARCHIVE") -> TableSpec:
    return table_spec(
        archive={"afterDays": 365, "schema": "archive", "compressAfterDays": 400},
        retention={
            "dropAfterDays": 440,
            "exportTo": {"bucket": bucket, "storageClass": storage_class, "prefix": "exports"},
        },
    )


def system_identifier(url: str) -> str:
    return str(query(url, "SELECT system_identifier::text FROM pg_control_system()")[0][0])


def store_for(stack: StackEnv, bucket: str) -> ExportStore:
    client = make_client(
        stack.s3_endpoint, stack.aws_region, stack.aws_access_key_id, stack.aws_secret_access_key
    )
    return ExportStore(client, bucket, part_size=5 * 1024 * 1024)


def exports(db: object, spec: object) -> list[ExportPartition]:
    plans = plans_for(db, [spec], NOW)  # type: ignore[arg-type, list-item]
    return [a for p in plans.values() for a in p.deferred if isinstance(a, ExportPartition)]


def seeded(url: str, spec: object, rows: int = 4000) -> None:
    """Messages from October 2024 to February 2025, partitioned and archived as of
    ARCHIVE_TIME."""
    create_messages_table(url, with_default=True)
    insert_messages(url, month_start(2024, 10), month_start(2025, 3), rows)
    with partition_db(url) as db:
        outcome = reconcile_tables(db, [spec], ARCHIVE_TIME)  # type: ignore[list-item]
    assert not outcome.failures, outcome.failures
    assert "ai_messages_p2024_10" in dict(partitions_of(url, "archive.ai_messages"))


def test_partition_goes_through_archive_compress_export_with_rows_and_checksum_conserved(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = lifecycle_spec(s3_bucket)
    create_messages_table(pg_database, with_default=True)
    insert_messages(pg_database, month_start(2024, 10), month_start(2025, 3), 4000)
    october_rows = fingerprint(pg_database, OCTOBER)
    with partition_db(pg_database) as db:
        archived = reconcile_tables(db, [spec], ARCHIVE_TIME)  # type: ignore[list-item]
        assert not archived.failures, archived.failures
        assert fingerprint(pg_database, "archive.ai_messages_p2024_10") == october_rows
        (compress,) = [
            a
            for p in plans_for(db, [spec], COMPRESS_TIME).values()  # type: ignore[list-item]
            for a in p.deferred
            if isinstance(a, PackPartition)
        ]
        assert compress.month.name == "ai_messages_p2024_10"
        pack_month(db, compress)
        assert fingerprint(
            pg_database, OCTOBER.replace("ai_messages", "archive.ai_messages_rows")
        ) == (october_rows)
        status = status_json(reconcile_tables(db, [spec], NOW).report().status)["partitions"][0]  # type: ignore[list-item]
        assert status["pendingExport"] == 1
        (export,) = exports(db, spec)
        assert export.partition.name == "ai_messages_p2024_10"
        assert export.unpack is not None  # packed: exported as its original rows
        source = system_identifier(pg_database)
        assert export.key == (
            f"exports/{source}/{pg_database.name}/archive/ai_messages_p2024_10.csv.zst"
        )
        db.statements.clear()
        result = export_and_drop(db, store_for(stack, s3_bucket), export)
        # One read of the partition: no count(*), no checksum pass before the upload.
        reads = [s for s in db.statements if s.startswith(("COPY", "SELECT count"))]
        assert len(reads) == 1, reads
        assert reads[0].startswith("COPY"), reads
    assert result.uploaded
    assert result.rows == october_rows[0]
    assert "ai_messages_p2024_10" not in dict(
        partitions_of(pg_database, "archive.ai_messages_packed")
    )

    s3 = stack.s3_client()
    head = s3.head_object(Bucket=s3_bucket, Key=export.key)
    assert head["StorageClass"] == "DEEP_ARCHIVE"
    assert head["Metadata"]["compression"] == "zstd"
    assert head["Metadata"]["source-system-identifier"] == source
    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key=export.manifest_key)["Body"].read())
    assert manifest["rows"] == october_rows[0]
    assert manifest["source"] == {
        "systemIdentifier": source,
        "database": pg_database.name,
        "partition": "archive.ai_messages_p2024_10",
        "bounds": manifest["source"]["bounds"],
    }
    assert manifest["objectBytes"] == head["ContentLength"]
    # DEEP_ARCHIVE objects are read only after a restore request, as on AWS.
    s3.restore_object(Bucket=s3_bucket, Key=export.key, RestoreRequest={"Days": 1})
    body = s3.get_object(Bucket=s3_bucket, Key=export.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest["objectSha256"]
    text = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert hashlib.sha256(text).hexdigest() == manifest["csvSha256"] == result.sha256
    reader = csv.reader(io.StringIO(text.decode()))
    header = next(reader)
    assert header[:3] == ["id", "thread_id", "user_id"]
    assert sum(1 for _ in reader) == october_rows[0]

    # Load the object back and compare row by row with what was in the partition.
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE restored (LIKE ai_messages)")
        with conn.cursor().copy("COPY restored FROM STDIN (FORMAT csv, HEADER)") as copy:
            copy.write(text)
    assert fingerprint(pg_database, "restored") == october_rows
    with partition_db(pg_database) as db:
        assert exports(db, spec) == []
        reconcile_tables(db, [spec], NOW)  # type: ignore[list-item]
        assert db.writes == []


def test_failure_between_export_and_drop_leaves_the_partition(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=2000)
    october = fingerprint(pg_database, "archive.ai_messages_p2024_10")
    export = exported_then_drained(pg_database, spec, stack, s3_bucket)
    assert fingerprint(pg_database, "archive.ai_messages_p2024_10") == october
    assert stack.s3_client().head_object(Bucket=s3_bucket, Key=export.key)["ContentLength"] > 0

    # The next run finds the verified object, re-checks it against the partition, and drops.
    with partition_db(pg_database) as db:
        (export,) = exports(db, spec)
        result = export_and_drop(db, store_for(stack, s3_bucket), export)
    assert not result.uploaded
    assert result.rows == october[0]
    assert "ai_messages_p2024_10" not in dict(partitions_of(pg_database, "archive.ai_messages"))


def test_an_upload_left_unfinished_by_a_killed_run_is_aborted_by_the_next_export(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=2000)
    s3 = stack.s3_client()
    with partition_db(pg_database) as db:
        (export,) = exports(db, spec)
    # What a run killed in the middle of its upload leaves: a started upload with a part stored.
    started = s3.create_multipart_upload(Bucket=s3_bucket, Key=export.key)
    s3.upload_part(
        Bucket=s3_bucket, Key=export.key, UploadId=started["UploadId"], PartNumber=1, Body=b"x"
    )
    other = s3.create_multipart_upload(Bucket=s3_bucket, Key=f"{export.key}.other")
    with partition_db(pg_database) as db:
        (export,) = exports(db, spec)
        result = export_and_drop(db, store_for(stack, s3_bucket), export)
    assert result.uploaded
    pending = s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    # Only the abandoned upload of this key is aborted; another key's is not this run's to end.
    assert [(u["Key"], u["UploadId"]) for u in pending] == [
        (f"{export.key}.other", other["UploadId"])
    ]
    s3.abort_multipart_upload(
        Bucket=s3_bucket, Key=f"{export.key}.other", UploadId=other["UploadId"]
    )


def exported_then_drained(
    url: str, spec: TableSpec, stack: StackEnv, bucket: str
) -> ExportPartition:
    """The one due export, uploaded and verified, with the run stopped just before the DROP."""

    def crash(_: ExportResult) -> None:
        raise RuntimeError("the node was drained")

    with partition_db(url) as db:
        (export,) = exports(db, spec)
        with pytest.raises(RuntimeError, match="drained"):
            export_and_drop(db, store_for(stack, bucket), export, before_drop=crash)
    return export


def partitions_ready(url: str, spec: object) -> dict[str, str]:
    with partition_db(url) as db:
        condition = reconcile_tables(db, [spec], NOW).report().condition  # type: ignore[list-item]
    return {"status": condition.status, "reason": condition.reason, "message": condition.message}


def test_an_object_that_does_not_match_the_partition_is_kept_and_reported_not_replaced(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    """Path 1: another database's export at the key is never overwritten; the partition stays
    and PartitionsReady names the reason and the key."""
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=1000)
    october = fingerprint(pg_database, "archive.ai_messages_p2024_10")
    with partition_db(pg_database) as db:
        (export,) = exports(db, spec)
    s3 = stack.s3_client()
    s3.put_object(
        Bucket=s3_bucket,
        Key=export.key,
        Body=b"another database's export",
        Metadata={"row-count": "3", "sha256": "0" * 64},
    )
    before = s3.head_object(Bucket=s3_bucket, Key=export.key)
    with (
        partition_db(pg_database) as db,
        pytest.raises(ExportConflictError, match="partition kept"),
    ):
        export_and_drop(db, store_for(stack, s3_bucket), export)
    after = s3.head_object(Bucket=s3_bucket, Key=export.key)
    assert after["ETag"] == before["ETag"]
    assert s3.get_object(Bucket=s3_bucket, Key=export.key)["Body"].read() == (
        b"another database's export"
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket, Prefix=export.manifest_key)
    assert fingerprint(pg_database, "archive.ai_messages_p2024_10") == october
    ready = partitions_ready(pg_database, spec)
    assert ready["status"] == "False"
    assert ready["reason"] == "ExportConflict"
    assert export.key in ready["message"]
    assert "ai_messages_p2024_10" in ready["message"]

    # The admin moves the foreign object away; the next run exports, verifies and drops.
    s3.delete_object(Bucket=s3_bucket, Key=export.key)
    with partition_db(pg_database) as db:
        result = export_and_drop(db, store_for(stack, s3_bucket), export)
    assert result.uploaded
    assert result.rows == october[0]
    assert partitions_ready(pg_database, spec)["reason"] != "ExportConflict"


def test_an_object_written_during_the_export_is_not_replaced(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    """Path 1: the upload completes with If-None-Match: * - a writer that takes the key
    while the partition streams wins, and the partition is kept."""
    spec = lifecycle_spec(s3_bucket, storage_class="STANDARD")
    seeded(pg_database, spec, rows=500)
    with partition_db(pg_database) as db:
        (export,) = exports(db, spec)
    store = store_for(stack, s3_bucket)
    real_upload = store.upload
    s3 = stack.s3_client()

    def racing_upload(key: str, chunks: Iterator[bytes], **options: Any) -> int:
        def racing() -> Iterator[bytes]:
            yield from chunks
            s3.put_object(Bucket=s3_bucket, Key=key, Body=b"the other writer")

        return real_upload(key, racing(), **options)

    store.upload = racing_upload  # type: ignore[method-assign, assignment]
    with partition_db(pg_database) as db, pytest.raises(ExportConflictError, match="another"):
        export_and_drop(db, store, export)
    body = s3.get_object(Bucket=s3_bucket, Key=export.key)["Body"].read()
    assert body == b"the other writer"
    assert "ai_messages_p2024_10" in dict(partitions_of(pg_database, "archive.ai_messages"))
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_an_earlier_export_whose_bytes_were_damaged_is_not_trusted_by_its_metadata(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    """Path 1: "verified" means the bytes read back, not HEAD metadata."""
    spec = lifecycle_spec(s3_bucket, storage_class="STANDARD")
    seeded(pg_database, spec, rows=800)
    october = fingerprint(pg_database, "archive.ai_messages_p2024_10")
    export = exported_then_drained(pg_database, spec, stack, s3_bucket)
    s3 = stack.s3_client()
    head = s3.head_object(Bucket=s3_bucket, Key=export.key)
    good = s3.get_object(Bucket=s3_bucket, Key=export.key)["Body"].read()
    damaged = good[: len(good) // 2]
    # Same metadata, half the bytes: what a HEAD alone would accept.
    s3.put_object(Bucket=s3_bucket, Key=export.key, Body=damaged, Metadata=head["Metadata"])
    with partition_db(pg_database) as db, pytest.raises(ExportNotVerifiedError):
        export_and_drop(db, store_for(stack, s3_bucket), export)
    assert fingerprint(pg_database, "archive.ai_messages_p2024_10") == october
    ready = partitions_ready(pg_database, spec)
    assert (ready["status"], ready["reason"]) == ("False", "ExportNotVerified")
    assert export.key in ready["message"]


def test_the_stack_s3_server_honours_create_only_writes(s3_bucket: str, stack: StackEnv) -> None:
    """What the export relies on: If-None-Match: * refused over an existing object, both for
    a PUT and for the completion of a multipart upload."""
    s3 = stack.s3_client()
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"first")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.put_object(Bucket=s3_bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=s3_bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"third")[
        "ETag"
    ]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.complete_multipart_upload(
            Bucket=s3_bucket,
            Key="k",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
            IfNoneMatch="*",
        )
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"first"
    s3.abort_multipart_upload(Bucket=s3_bucket, Key="k", UploadId=upload)


def test_an_object_that_fails_verification_blocks_the_drop(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=500)
    with partition_db(pg_database) as db:
        (export,) = exports(db, spec)
    october = fingerprint(pg_database, "archive.ai_messages_p2024_10")
    store = store_for(stack, s3_bucket)
    real_head = store.head
    # An S3-compatible store that silently stores STANDARD whatever it is asked for.
    store.head = lambda key: (  # type: ignore[method-assign]
        None if (h := real_head(key)) is None else type(h)(h.size, h.metadata, "STANDARD")
    )
    with partition_db(pg_database) as db, pytest.raises(ExportNotVerifiedError, match="STANDARD"):
        export_and_drop(db, store, export)
    assert fingerprint(pg_database, "archive.ai_messages_p2024_10") == october


def test_export_cli_exports_verifies_and_drops(
    pg_database: PgDatabase, s3_bucket: str, stack: StackEnv
) -> None:
    spec = lifecycle_spec(s3_bucket)
    seeded(pg_database, spec, rows=1500)
    env = jobs_env(pg_database, spec, stack)
    dry = CliRunner().invoke(
        app, ["partitions", "export", "--dry-run", "--now", NOW.isoformat()], env=env
    )
    assert dry.exit_code == 0, dry.output
    assert "export archive.ai_messages_p2024_10" in dry.output
    assert "ai_messages_p2024_10" in dict(partitions_of(pg_database, "archive.ai_messages"))
    result = CliRunner().invoke(app, ["partitions", "export", "--now", NOW.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    assert "exported archive.ai_messages_p2024_10" in result.output
    assert "dropped" in result.output
    assert str(pg_database).split("@")[0] not in result.output  # no credentials echoed
    assert "ai_messages_p2024_10" not in dict(partitions_of(pg_database, "archive.ai_messages"))
    again = CliRunner().invoke(app, ["partitions", "export", "--now", NOW.isoformat()], env=env)
    assert again.output.strip() == "nothing to export"
    assert query(pg_database, "SELECT count(*) FROM archive.ai_messages") > [(0,)]


def test_uploads_stream_in_parts_and_vanish_when_the_stream_fails(
    s3_bucket: str, stack: StackEnv
) -> None:
    store = store_for(stack, s3_bucket)
    data = os.urandom(11 * 1024 * 1024)
    chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))
    stored = store.upload("big.bin", chunks, metadata={"row-count": "1"}, storage_class="STANDARD")
    assert stored == len(data)
    s3 = stack.s3_client()
    assert s3.get_object(Bucket=s3_bucket, Key="big.bin")["Body"].read() == data
    head = store.head("big.bin")
    assert head is not None
    assert head.storage_class == "STANDARD"
    assert head.metadata == {"row-count": "1"}
    with pytest.raises(Conflict):  # create-only: an upload never replaces an object
        store.upload("big.bin", [b"x"], metadata={}, storage_class="STANDARD")
    assert s3.get_object(Bucket=s3_bucket, Key="big.bin")["Body"].read() == data

    def broken() -> Iterator[bytes]:
        yield os.urandom(6 * 1024 * 1024)
        raise ExportNotVerifiedError("the source changed")

    with pytest.raises(ExportNotVerifiedError):
        store.upload("half.bin", broken(), metadata={}, storage_class="STANDARD")
    assert store.head("half.bin") is None
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
