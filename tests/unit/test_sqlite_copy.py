"""The compiled reader (clients/_sqlite_copy.c) gives what the Python converters give, byte for
byte: the same COPY lines, digests, routing and rejects, over every value kind the converter
tests use (test_sqlite_values.py, the integration test's samples file, the app's tables).

Each case is a SQLite file built here (a local file, no server): the same rows go through the
Python path (SqliteSource.rows + RowConverter.block) and the compiled one (CompiledReader +
RowConverter.from_compiled), and the results are compared row by row.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.migratekit import build_app_file, build_samples_file

from lokifi_storage.clients import sqlite_copy
from lokifi_storage.clients.sqlite_copy import CompiledReader
from lokifi_storage.clients.sqlite_source import SqliteSource
from lokifi_storage.domain.migrate_chunks import Reject
from lokifi_storage.domain.migrate_plan import ArchiveRouter, HourReader
from lokifi_storage.domain.migrate_schema import SourceTable, TargetColumn, TargetTable
from lokifi_storage.domain.partitions.bounds import TimeRange
from lokifi_storage.domain.partitions.catalog import QName
from lokifi_storage.domain.sqlite_time import timestamp_instant
from lokifi_storage.domain.sqlite_values import Rejected
from lokifi_storage.jobs.migrate_convert import RowConverter, row_digest

pytestmark = pytest.mark.skipif(
    not sqlite_copy.available(), reason="the compiled reader is not built here"
)

UTC = dt.UTC
MAIN = QName("public", "t")
ARCHIVE = QName("archive", "t")


class Text(bytes):
    """A value to store as TEXT whatever its bytes (NUL, invalid UTF-8 included)."""


def _t(text: str) -> Text:
    return Text(text.encode())


# Values per target type: those of test_sqlite_values.py and of the integration test's samples
# file, the common ones and the ones to reject, each kind of storage SQLite has.
COMMON_TEXT = [_t("plain"), _t("tab\there"), _t("new\nline\\"), _t("é"), _t(""), _t("x" * 3000)]
COMMON_TEXT += [_t("bell\x07 bs\x08 ff\x0c vt\x0b cr\r"), _t("héllo"), _t("a\tb\nc\\d\re")]
ODD_TEXT: list[Any] = [
    Text(b"a\x00b"),
    Text(b"ab\xff\xfe"),
    Text(b"\xc3"),
    Text(b"\xed\xa0\x80"),  # a surrogate: not UTF-8 for Python
    Text(b"\xf4\x90\x80\x80"),  # past U+10FFFF
    Text(b"\xe0\x80\x80"),  # overlong
    Text("😀".encode()),
    b"ok",
    b"\x00\xff",
    42,
    -7,
    1.5,
    1e15,
    -0.0,
    float("inf"),
    None,
]
TIMES: list[Any] = [
    _t("2024-03-05 10:11:12"),
    _t("2024-03-05T10:11:12"),
    _t("2024-02-29 00:00:00"),
    _t("0001-01-01 00:00:00"),
    _t("9999-12-31 23:59:59"),
    _t("2023-02-29 00:00:00"),
    _t("2024-13-01 00:00:00"),
    _t("2024-03-05 24:00:00"),
    _t("2024-03-05 10:60:00"),
    _t("2024-03-05 10:11:60"),
    _t("0000-01-01 00:00:00"),
    _t("2024-03-05T10:11:12Z"),
    _t("2024-03-05T10:11:12.5+02:00"),
    _t("2024-03-01T01:30:00+05:30"),
    _t("2024-03-05"),
    _t("2024-03-05 10:11+05"),
    _t("2024-W10-2 10:11:12"),
    _t("2024-03-05x10:11:12"),
    _t("\uff12024-03-05 10:11:12"),  # a fullwidth digit
    _t("1709633472"),
    _t(" 1709633472123 "),
    _t("yesterday"),
    _t("10:11"),
    1709633472,
    1709633472123,
    -1709633472123,
    -1,
    0,
    99_999_999_999,
    100_000_000_000,
    -100_000_000_000,
    253402300799,
    253402300800,
    -62135596800,
    -62135596801,
    2**62,
    -(2**63),
    1709633472.25,
    float("nan"),
    b"\x01\x02",
    None,
]
JSONS: list[Any] = [
    _t('{"b": 1, "a": "x"}'),
    _t('{"role": "assistant", "tokens": 123, "ok": true, "no": false, "n": null}'),
    _t("{}"),
    _t(" {}"),
    _t("{} \n"),
    _t('{ "a" : 1 , "bb" : -2 }'),
    _t('{"esc": "q\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f"}'),
    _t('{"k\\n": 1}'),
    _t('{"a":1,"a":2}'),
    _t('{"a": -0}'),
    _t('{"a": 0}'),
    _t('{"a": 01}'),
    _t('{"a": 1.5}'),
    _t('{"a": 1e2}'),
    _t('{"a": 1.}'),
    _t('{"a": [1, 2]}'),
    _t('{"a": {"b": 1}}'),
    _t('{"a": NaN}'),
    _t('{"a": "\\u00e9"}'),
    _t('{"é": 1}'),
    _t('{"a": "tab\there"}'),
    _t('{"a": 1,}'),
    _t('{"a" 1}'),
    _t('{"a": 1} x'),
    _t('{"a": "x\x7f"}'),
    _t('{"a": ' + "9" * 5000 + "}"),
    _t('{"bb": 1, "a": [1.50, 1e2, -0], "ccc": {"z": null}}'),
    _t('{"ccc": {"é": "\\u00e9\\n"}, "dd": null}'),
    _t('"tab\\there"'),
    _t('"just a string"'),
    _t("[true, false, -0, 0.000001]"),
    _t("42"),
    _t("{not json"),
    _t('"\\u0000"'),
    _t('"\\ud800"'),
    Text(b'{"a": "b\x00"}'),
    5,
    1.5,
    b"\x01",
    None,
]
BOOLEANS: list[Any] = [1, 0, 2, -1, 1.0, 0.0, _t("true"), _t("No"), _t(" 1 "), _t("maybe")]
BOOLEANS += [b"\x01", None]
INTEGERS: list[Any] = [0, 1, -1, 7, 2**15 - 1, 2**15, -(2**15), -(2**15) - 1, 2**31 - 1, 2**31]
INTEGERS += [-(2**31), -(2**31) - 1, 2**63 - 1, -(2**63), 7.0, 7.5, _t(" 42 "), _t("1e3")]
INTEGERS += [_t("x"), Text(b"\x00"), b"\x00", None]

CASES: list[tuple[str, list[Any]]] = [
    ("text", COMMON_TEXT + ODD_TEXT),
    ("character varying", COMMON_TEXT + ODD_TEXT),
    ("character varying(3)", [_t("abc"), _t("éèà"), _t("abcd"), _t("éèàé"), _t(""), 123, None]),
    ("character varying(3)", COMMON_TEXT + ODD_TEXT),
    ("smallint", INTEGERS),
    ("integer", INTEGERS),
    ("bigint", INTEGERS),
    ("boolean", BOOLEANS),
    ("timestamp with time zone", TIMES),
    ("timestamp without time zone", TIMES),
    ("jsonb", JSONS),
    # kinds left to Python entirely: their rows all go back, with the same result
    ("date", [_t("2024-02-29"), _t("2024-02-29 10:00:00"), 1709596800, None]),
    ("double precision", [0.1, 1e15, -0.0, float("inf"), 1e-05, 3, _t("1.5"), _t("x"), None]),
    ("numeric", [_t("1.50"), 3, 2.5, _t("-0.0"), _t("x"), None]),
    ("numeric(6,2)", [_t("12.5"), _t("12.555"), None]),
    ("json", [_t('{"b": 2, "a": 1}'), _t("{bad"), 5, None]),
    ("bytea", [b"\x00\xff", b"", _t("hi"), 5, None]),
    ("uuid", [_t("12345678-1234-5678-1234-567812345678"), _t("nope"), None]),
]


def _store(value: Any) -> tuple[str, Any]:
    if isinstance(value, Text):
        return "CAST(? AS TEXT)", bytes(value)
    return "?", value


def _file(path: Path, rows: list[list[Any]], columns: int) -> Path:
    conn = sqlite3.connect(path)
    names = ", ".join(f"c{i}" for i in range(columns))
    conn.execute(f"CREATE TABLE t ({names})")  # no affinity: values are stored as given
    for row in rows:
        marks, params = zip(*map(_store, row), strict=True)
        conn.execute(f"INSERT INTO t VALUES ({', '.join(marks)})", params)
    conn.commit()
    conn.close()
    return path


def _both(
    path: Path,
    source: SourceTable,
    target: TargetTable,
    *,
    router: ArchiveRouter | None = None,
    batch: int = 7,
) -> tuple[Any, Any, int]:
    """(Python's result, the compiled one's, how many rows went back to Python)."""

    def make() -> RowConverter:
        return RowConverter(source, target, archive=ARCHIVE if router else None, router=router)

    results = []
    python = SqliteSource(path)
    try:
        for rows in python.rows(source, None, batch):
            results.append(make().block(rows))
    finally:
        python.close()
    compiled_results = []
    handed_back = 0
    reader = CompiledReader(path)
    try:
        converter = make()
        plan = converter.compiled_plan()
        after = None
        while True:
            block = reader.convert(source, plan, after, None, batch)
            if block.last_rowid is None:
                break
            after = block.last_rowid
            handed_back += len(block.fallback)
            compiled_results.append(converter.from_compiled(block))
    finally:
        reader.close()
    return _flat(results), _flat(compiled_results), handed_back


def _flat(blocks: list[Any]) -> tuple[dict[Any, list[tuple[int, bytes, int]]], list[Reject], int]:
    routes: dict[Any, list[tuple[int, bytes, int]]] = {}
    rejects: list[Reject] = []
    size = 0
    for block in blocks:
        rejects.extend(block.rejects)
        size += block.size
        for relation, rows in block.routes.items():
            hashes = rows.hashes or [0] * len(rows.lines)
            routes.setdefault(relation, []).extend(
                zip(rows.rowids, map(bytes, rows.lines), hashes, strict=True)
            )
    return {r: sorted(v) for r, v in routes.items()}, rejects, size


def _table(columns: list[tuple[str, str, bool]]) -> tuple[SourceTable, TargetTable]:
    """A source table of the file's columns c0.. and its target with these types."""
    source_columns = tuple(
        _source_column(f"c{i}", not_null) for i, (_, _, not_null) in enumerate(columns)
    )
    source = SourceTable(name="t", columns=source_columns)
    target = TargetTable(
        qname=MAIN,
        columns=tuple(
            TargetColumn(name=f"c{i}", type=pg_type, not_null=not_null)
            for i, (_, pg_type, not_null) in enumerate(columns)
        ),
        partition_column=next((f"c{i}" for i, (r, _, _) in enumerate(columns) if r == "p"), None),
    )
    return source, target


def _source_column(name: str, not_null: bool) -> Any:
    from lokifi_storage.domain.migrate_schema import SourceColumn

    return SourceColumn(name=name, declared="", not_null=not_null)


def test_the_digest_in_c_is_the_first_64_bits_of_md5() -> None:
    rng = random.Random(16)
    for length in [*range(0, 140), 1000, 4096, 70001]:
        line = bytes(rng.randrange(256) for _ in range(length))
        assert sqlite_copy.md5_head(line) == row_digest(line), length


@pytest.mark.parametrize(
    ("pg_type", "values"), CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)]
)
def test_every_value_kind_gives_the_same_lines_digests_and_rejects(
    tmp_path: Path, pg_type: str, values: list[Any]
) -> None:
    # each value alone, next to an integer key, nullable and NOT NULL
    rows = [[i, v, v] for i, v in enumerate(values)]
    path = _file(tmp_path / "v.sqlite", rows, 3)
    source, target = _table([("", "bigint", True), ("", pg_type, False), ("", pg_type, True)])
    python, compiled, _ = _both(path, source, target)
    assert compiled == python


def test_lines_read_back_are_counted_and_digested_as_row_digest_does() -> None:
    rng = random.Random(17)
    lines = [
        bytes(rng.randrange(256) for _ in range(rng.randrange(90))) + b"\n" for _ in range(3000)
    ]
    expected = sum(row_digest(line[:-1]) for line in lines)  # exact, past 64 bits
    assert sqlite_copy.digest_lines([memoryview(line) for line in lines]) == (3000, expected)
    assert sqlite_copy.digest_lines([]) == (0, 0)


@pytest.mark.parametrize("compiled", ["1", "0"], ids=["compiled", "python"])
def test_times_read_back_as_the_server_prints_them_hash_as_the_converters_wrote_them(
    compiled: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-back no longer asks the server for to_char: a timestamp field as COPY TO prints
    it is given its six fractional digits before it is hashed, and any other field (or a field
    of another shape) is hashed as it is, in C and in Python alike."""
    monkeypatch.setenv("LOKIFI_MIGRATE_COMPILED", compiled)
    stamps = bytes([0, 1, 2, 0])
    printed_written = [
        (b"7\t2024-03-05 10:11:12+00\t2024-03-05 10:11:12\tx", None),
        (b"7\t2024-03-05 10:11:12.5+00\t2024-03-05 10:11:12.123456\t", None),
        (b"7\t0001-01-01 00:00:00.000001+00\t9999-12-31 23:59:59.25\ty\tz", None),
        (b"7\t\\N\t\\N\t2024-03-05 10:11:12+00", b"7\t\\N\t\\N\t2024-03-05 10:11:12+00"),
        (b"2024-03-05 10:11:12+00\t2024-03-05 10:11:12+01\t2024-03-05 10:11\t", b"same"),
        (b"1\t2024-03-05 10:11:12.+00\t2024-03-05 10:11:12.1234567", b"same"),
        (b"1\t2024-03-05T10:11:12+00\t2024-03-05 10:11:12+00", b"same"),
        (b"1", b"same"),
        (b"", b"same"),
    ]
    expected_text = [
        b"7\t2024-03-05 10:11:12.000000+00\t2024-03-05 10:11:12.000000\tx",
        b"7\t2024-03-05 10:11:12.500000+00\t2024-03-05 10:11:12.123456\t",
        b"7\t0001-01-01 00:00:00.000001+00\t9999-12-31 23:59:59.250000\ty\tz",
    ]
    for (printed, written), text in zip(printed_written, expected_text + [None] * 9, strict=False):
        hashed = text if written is None else (printed if written == b"same" else written)
        assert sqlite_copy.digest_lines([printed + b"\n"], stamps) == (1, row_digest(hashed))
    # Without stamps every field is hashed as it is.
    line = printed_written[0][0]
    assert sqlite_copy.digest_lines([line + b"\n"]) == (1, row_digest(line))


def test_common_values_are_converted_in_c_and_odd_ones_handed_back(tmp_path: Path) -> None:
    """The comparison above is not empty: the common kinds stay in C, the rest go back."""
    common = [
        [1, _t("plain\ttext"), _t("2024-03-05 10:11:12"), _t('{"a": "x", "n": 1}'), 1, 1709633472],
        [2, _t("é"), _t("2024-03-05T10:11:12"), _t("{}"), 0, None],
    ]
    odd = [[3, _t("x"), _t("2024-03-05T10:11:12Z"), _t("{}"), 1, 1]]
    path = _file(tmp_path / "c.sqlite", common + odd, 6)
    source, target = _table(
        [
            ("", "bigint", True),
            ("", "text", True),
            ("", "timestamp with time zone", True),
            ("", "jsonb", False),
            ("", "boolean", False),
            ("", "timestamp without time zone", False),
        ]
    )
    python, compiled, handed_back = _both(path, source, target)
    assert compiled == python
    assert handed_back == 1
    lines = [line for _, line, _ in compiled[0][MAIN]]
    assert lines[0] == (
        b"1\tplain\\ttext\t2024-03-05 10:11:12.000000+00\t"
        b'{"a": "x", "n": 1}\tt\t2024-03-05 10:11:12.000000'
    )


def test_the_samples_file_of_the_integration_test_converts_the_same(tmp_path: Path) -> None:
    path = build_samples_file(tmp_path / "samples.sqlite")
    python_source = SqliteSource(path)
    source = python_source.table("samples")
    python_source.close()
    types = {
        "id": "bigint",
        "at": "timestamp with time zone",
        "flag": "boolean",
        "doc": "jsonb",
        "data": "bytea",
        "note": "text",
        "ratio": "double precision",
        "amount": "numeric",
        "day": "date",
        "untyped": "text",
    }
    target = TargetTable(
        qname=MAIN,
        columns=tuple(TargetColumn(name=c.name, type=types[c.name]) for c in source.copied),
    )
    python, compiled, _ = _both(path, source, target, batch=500)
    assert compiled == python
    assert len(python[0][MAIN]) == 2006


def test_the_app_tables_route_old_rows_to_the_archive_the_same(tmp_path: Path) -> None:
    path = build_app_file(tmp_path / "app.sqlite", 3000)
    reader = SqliteSource(path)
    tables = {name: reader.table(name) for name in ("users", "ai_threads", "ai_messages")}
    reader.close()
    router = ArchiveRouter(
        [
            TimeRange(dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC)),
            TimeRange(dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 12, 1, tzinfo=UTC)),
        ]
    )
    types = {
        "id": "bigint",
        "user_id": "bigint",
        "thread_id": "bigint",
        "email": "character varying(255)",
        "is_active": "boolean",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
        "metadata": "jsonb",
    }
    handed_back = 0
    archived = 0
    for name, source in tables.items():
        target = TargetTable(
            qname=MAIN,
            columns=tuple(
                TargetColumn(name=c.name, type=types.get(c.name, "text"), not_null=c.not_null)
                for c in source.copied
            ),
            partition_column="created_at",
        )
        python, compiled, back = _both(path, source, target, router=router, batch=1000)
        assert compiled == python, name
        handed_back += back
        archived += len(python[0].get(ARCHIVE, []))
    assert archived > 0
    # Only the quarter of messages whose time is ISO text with a zone went to Python.
    assert handed_back == 750


def test_a_close_from_another_thread_waits_for_the_running_conversion(tmp_path: Path) -> None:
    """The run closes its readers when it stops (an error, SIGTERM) while the conversion
    thread may be inside convert() without the interpreter lock: the close waits for it
    instead of freeing the connection under a running statement."""
    path = _file(tmp_path / "big.sqlite", [[i, _t("x" * 500)] for i in range(100_000)], 2)
    source, target = _table([("", "bigint", True), ("", "text", True)])
    plan = RowConverter(source, target).compiled_plan()
    reader = CompiledReader(path)
    done: dict[str, Any] = {}

    def convert() -> None:
        done["block"] = reader.convert(source, plan, None, None, 100_000)

    thread = threading.Thread(target=convert)
    thread.start()
    time.sleep(0.01)
    reader.close()
    thread.join()
    assert len(done["block"].main.lines) == 100_000
    with pytest.raises(ValueError, match="closed"):
        reader.convert(source, plan, None, None, 10)


def test_rows_per_hour_counted_in_c_are_those_of_each_value_s_own_instant(tmp_path: Path) -> None:
    """The time-bucket scan: naive ISO times counted in C, every other value through
    HourReader. Every value must count in the hour `timestamp_instant` gives it, and a value
    it refuses nowhere, even after a valid one of the same hour (e.g. `10:60:00`)."""
    values: list[Any] = [
        *TIMES,
        _t("2024-03-05 10:59:59"),
        _t("2024-03-05T10:00:00"),
        _t("2024-03-05 10:99:00"),  # the hour of the two before, but not a time
        _t("2024-03-05 10:30:00+01:00"),  # the hour before, through HourReader
        _t("2024-03-05 11:00:00"),
        _t("2024-03-05 10:05:00"),  # back to an hour already counted
    ]
    values += [
        _t(f"2023-{m:02d}-{d:02d} {h:02d}:15:00") for m in (1, 6) for d in (1, 30) for h in (0, 23)
    ]
    path = _file(tmp_path / "times.sqlite", [[v] for v in values], 1)

    reader = HourReader()
    counted = sqlite_copy.hour_counts(path, "t", "c0", reader, busy_timeout_ms=1000)
    for hour, rows in counted.items():
        reader.hours[hour] = reader.hours.get(hour, 0) + rows

    expected: dict[dt.datetime, int] = {}
    for value in values:
        if value is None:
            continue
        try:
            instant = timestamp_instant(bytes(value) if isinstance(value, Text) else value)
        except Rejected:
            continue
        hour = instant.replace(minute=0, second=0, microsecond=0)
        expected[hour] = expected.get(hour, 0) + 1
    assert reader.hours == expected
    assert sum(counted.values()) == 17  # the naive ones were counted in C
    # And as the Python scan counts them (SqliteSource.visit_values), value by value.
    python = HourReader()
    source = SqliteSource(path)
    try:
        source.visit_values("t", "c0", python)
    finally:
        source.close()
    assert python.hours == expected
