"""The backup key layout and what one LIST of the bucket says about the runs in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lokifi_storage.domain.backup_catalog import (
    ListedObject,
    backup_folder,
    catalog,
    compression_of,
    dump_key,
    format_stamp,
    manifest_key,
    name_prefix,
    parse_stamp,
    sidecar_key,
    source_id,
    verify_key,
)

T0 = datetime(2026, 2, 5, 2, 0, 0, 123000, tzinfo=UTC)


def _obj(key: str, at: datetime = T0, size: int = 10) -> ListedObject:
    return ListedObject(key=key, size=size, last_modified=at)


def test_keys_follow_prefix_name_schedule_stamp_layout() -> None:
    stamp = format_stamp(T0)
    assert stamp == "20260205T020000.123Z"
    assert dump_key("backups/", "prod", "daily", stamp, "zstd") == (
        "backups/prod/daily/20260205T020000.123Z.dump.zst"
    )
    assert dump_key("backups", "prod", "daily", stamp, "none") == (
        "backups/prod/daily/20260205T020000.123Z.dump"
    )
    assert (
        manifest_key("", "prod", "daily", stamp) == "prod/daily/20260205T020000.123Z.manifest.json"
    )
    assert verify_key("b/", "prod", "daily", stamp, ok=False).endswith(".verify-failed.json")


def test_names_with_slashes_are_refused() -> None:
    with pytest.raises(ValueError, match="schedule"):
        dump_key("b/", "prod", "da/ily", "20260205T020000.123Z", "gzip")
    with pytest.raises(ValueError, match="backup folder"):
        name_prefix("b/", "../etc")
    with pytest.raises(ValueError, match="backup name"):
        backup_folder("lokifi", "a/b", "1-lokifi")
    with pytest.raises(ValueError, match="namespace"):
        backup_folder("..", "prod", "1-lokifi")


def test_the_folder_carries_namespace_and_source() -> None:
    """Path 2: same-named resources in two namespaces, or two sources, never share a folder."""
    staging = backup_folder("staging", "lokifi", source_id("7301", "lokifi"))
    prod = backup_folder("prod", "lokifi", source_id("7302", "lokifi"))
    assert staging == "staging/lokifi/7301-lokifi"
    assert not name_prefix("b/", prod).startswith(name_prefix("b/", staging))
    assert source_id("1", "a b/c") == "1-a%20b%2Fc"
    assert name_prefix("", backup_folder("ns", "x", source_id("1", "a b/c"))) == "ns/x/1-a%20b%2Fc/"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 1, 1)))
def test_stamps_sort_like_the_times_they_name(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=UTC)
    later = moment + timedelta(milliseconds=1)
    assert parse_stamp(format_stamp(moment)) == moment
    assert format_stamp(moment) < format_stamp(later)


def test_sidecar_and_compression_are_read_back_from_a_dump_key() -> None:
    key = "b/prod/daily/20260205T020000.123Z.dump.lz4"
    assert compression_of(key) == "lz4"
    assert compression_of("b/prod/daily/20260205T020000.123Z.dump") == "none"
    assert sidecar_key(key, ".manifest.json") == "b/prod/daily/20260205T020000.123Z.manifest.json"
    with pytest.raises(ValueError, match="unknown compression"):
        compression_of("b/prod/daily/x.dump.bz2")


def test_catalog_groups_sidecars_with_their_dump_and_ignores_foreign_keys() -> None:
    stamp = format_stamp(T0)
    objects = [
        _obj(dump_key("b/", "prod", "daily", stamp, "zstd"), size=4096),
        _obj(manifest_key("b/", "prod", "daily", stamp)),
        _obj(verify_key("b/", "prod", "daily", stamp, ok=True), T0 + timedelta(hours=1)),
        _obj("b/prod/daily/notes.txt"),
        _obj("b/other/daily/" + stamp + ".dump.zst"),
        _obj(manifest_key("b/", "prod", "weekly", stamp)),
    ]
    daily, weekly = catalog("b/", "prod", objects)
    assert daily.schedule == "daily"
    assert daily.complete
    assert daily.dump is not None
    assert daily.dump.size == 4096
    assert daily.verified is True
    assert daily.verified_at == T0 + timedelta(hours=1)
    assert weekly.schedule == "weekly"
    assert not weekly.complete
    assert weekly.keys() == [manifest_key("b/", "prod", "weekly", stamp)]


def test_the_most_recent_verify_marker_decides_the_verify_outcome() -> None:
    stamp = format_stamp(T0)
    ok = _obj(verify_key("b/", "p", "d", stamp, ok=True), T0 + timedelta(hours=1))
    failed = _obj(verify_key("b/", "p", "d", stamp, ok=False), T0 + timedelta(hours=2))
    (entry,) = catalog("b/", "p", [ok, failed])
    assert entry.verified is False
    (entry,) = catalog("b/", "p", [_obj(ok.key, T0 + timedelta(hours=3)), failed])
    assert entry.verified is True


def test_dump_keys_come_before_sidecars_so_an_interrupted_delete_leaves_only_orphans() -> None:
    stamp = format_stamp(T0)
    objects = [
        _obj(manifest_key("b/", "p", "d", stamp)),
        _obj(dump_key("b/", "p", "d", stamp, "gzip")),
    ]
    (entry,) = catalog("b/", "p", objects)
    assert entry.keys()[0].endswith(".dump.gz")
