"""Export keys carry the source's identity; the kept mark round-trips; CSV records are counted
as PostgreSQL writes them."""

from __future__ import annotations

import csv
import io

import pytest

from lokifi_storage.domain.partitions.export_layout import (
    ExportManifest,
    ManifestProblem,
    export_key,
    kept_mark,
    manifest_key,
    parse_kept_mark,
)
from lokifi_storage.jobs.export_proof import CsvRecords


def test_two_servers_with_a_database_of_the_same_name_never_share_a_key() -> None:
    staging = export_key("exports", "7301", "lokifi", "archive", "ai_messages_p2024_10")
    prod = export_key("exports/", "7302", "lokifi", "archive", "ai_messages_p2024_10")
    assert staging == "exports/7301/lokifi/archive/ai_messages_p2024_10.csv.zst"
    assert staging != prod
    assert manifest_key(staging) == "exports/7301/lokifi/archive/ai_messages_p2024_10.manifest.json"


def test_names_that_are_not_safe_in_a_key_are_encoded() -> None:
    key = export_key("", "1", "a/b c", "archive", "t")
    assert key == "1/a%2Fb%20c/archive/t.csv.zst"


def test_the_kept_mark_round_trips_and_other_comments_are_ignored() -> None:
    mark = kept_mark("ExportConflict", "s3://b/k holds another object")
    assert parse_kept_mark(mark) == ("ExportConflict", "s3://b/k holds another object")
    assert parse_kept_mark("a DBA's note") is None
    assert parse_kept_mark(None) is None


def test_a_manifest_of_another_format_is_refused() -> None:
    with pytest.raises(ManifestProblem):
        ExportManifest.parse({"format": "lokifi-backup/1"})


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_csv_records_with_quoted_newlines_and_quotes_are_counted_in_any_chunking(
    chunk: int,
) -> None:
    rows = [
        ["1", 'say "hi"\nthen\nleave', ""],
        ["2", "plain", "a,b"],
        ["3", '""', "\r\n"],
        ["4", "", '"'],
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "content", "extra"])
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    counter = CsvRecords()
    for start in range(0, len(data), chunk):
        counter.feed(data[start : start + chunk])
    assert counter.rows() == len(rows)
