"""SQLite's loose values into COPY text: every kind the app's file really holds, and rejects.

TEXT arrives as bytearray and BLOB as bytes (clients/sqlite_source.py sets it up so); the
integration tests check the same fields against what PostgreSQL prints back.
"""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from lokifi_storage.domain.copy_fields import Rejected, copy_escape
from lokifi_storage.domain.sqlite_columns import column_converter_for
from lokifi_storage.domain.sqlite_json import jsonb_text
from lokifi_storage.domain.sqlite_time import timestamp_instant
from lokifi_storage.domain.sqlite_values import converter_for, float_bits, pg_float_text


def t(text: str) -> bytearray:
    return bytearray(text.encode())


TS = converter_for("timestamp with time zone")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (t("2024-03-05 10:11:12"), "2024-03-05 10:11:12.000000+00"),
        (t("2024-03-05T10:11:12Z"), "2024-03-05 10:11:12.000000+00"),
        (t("2024-03-05T10:11:12.5+02:00"), "2024-03-05 08:11:12.500000+00"),
        (t("2024-03-01T01:30:00+05:30"), "2024-02-29 20:00:00.000000+00"),
        (t("2024-03-05"), "2024-03-05 00:00:00.000000+00"),
        (1709633472, "2024-03-05 10:11:12.000000+00"),
        (1709633472123, "2024-03-05 10:11:12.123000+00"),
        (1709633472.25, "2024-03-05 10:11:12.250000+00"),
        (t("1709633472"), "2024-03-05 10:11:12.000000+00"),
        (t(" 1709633472123 "), "2024-03-05 10:11:12.123000+00"),
    ],
)
def test_timestamps_iso_with_or_without_zone_and_unix_seconds_or_millis(
    value: object, expected: str
) -> None:
    assert TS(value) == expected.encode()


@pytest.mark.parametrize(
    "value", [t("yesterday"), t("2024-13-01"), b"\x01\x02", t("10:11"), float("nan")]
)
def test_timestamps_that_are_not_times_are_rejected(value: object) -> None:
    with pytest.raises(Rejected):
        TS(value)


def test_zoneless_text_is_utc_like_the_partition_planner_reads_it() -> None:
    assert timestamp_instant(t("2024-01-31 23:30:00")) == dt.datetime(
        2024, 1, 31, 23, 30, tzinfo=dt.UTC
    )


def test_date_column_refuses_a_time_of_day_rather_than_dropping_it() -> None:
    date = converter_for("date")
    assert date(t("2024-02-29")) == b"2024-02-29"
    with pytest.raises(Rejected, match="time of day"):
        date(t("2024-02-29 10:00:00"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, b"t"), (0, b"f"), (1.0, b"t"), (t("true"), b"t"), (t("No"), b"f"), (t(" 1 "), b"t")],
)
def test_booleans_as_numbers_or_words(value: object, expected: bytes) -> None:
    assert converter_for("boolean")(value) == expected


@pytest.mark.parametrize("value", [2, -1, t("maybe"), b"\x01"])
def test_other_booleans_are_rejected(value: object) -> None:
    with pytest.raises(Rejected):
        converter_for("boolean")(value)


def test_text_escapes_copy_specials_and_takes_utf8_blobs() -> None:
    text = converter_for("text")
    assert text(t("a\tb\nc\\d\re")) == b"a\\tb\\nc\\\\d\\re"
    assert text(t("héllo")) == "héllo".encode()
    assert text(b"ok") == b"ok"  # a BLOB that is valid UTF-8
    assert text(42) == b"42"


def test_nul_bytes_and_invalid_utf8_are_rejected_with_the_reason() -> None:
    text = converter_for("text")
    with pytest.raises(Rejected, match="NUL"):
        text(bytearray(b"a\x00b"))
    with pytest.raises(Rejected, match="invalid UTF-8 at byte 2"):
        text(bytearray(b"ab\xff\xfe"))


def test_varchar_length_is_counted_in_characters() -> None:
    varchar = converter_for("character varying(3)")
    assert varchar(t("éèà")) == "éèà".encode()
    with pytest.raises(Rejected, match="varchar"):
        varchar(t("abcd"))


def test_integers_from_loose_values_and_their_ranges() -> None:
    integer = converter_for("integer")
    assert integer(t(" 42 ")) == b"42"
    assert integer(7.0) == b"7"
    assert integer(t("1e3")) == b"1000"
    for bad in (7.5, t("x"), 2**31, b"\x00"):
        with pytest.raises(Rejected):
            integer(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e15, "1e+15"),
        (123456789012345.0, "123456789012345"),
        (1234567890123456.0, "1.234567890123456e+15"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (100.0, "100"),
        (-0.0, "-0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.5e300, "1.5e+300"),
        (float("inf"), "Infinity"),
    ],
)
def test_floats_are_written_as_text_postgresql_reads_back_exactly(
    value: float, expected: str
) -> None:
    assert pg_float_text(value) == expected
    assert float_bits(expected.encode()) == struct.pack(">d", value).hex().encode()


def test_numeric_keeps_scale_and_refuses_rounding() -> None:
    assert converter_for("numeric")(t("1.50")) == b"1.50"
    assert converter_for("numeric")(t("-0.0")) == b"0.0"
    assert converter_for("numeric(6,2)")(t("12.5")) == b"12.50"
    with pytest.raises(Rejected, match="decimal places"):
        converter_for("numeric(6,2)")(t("12.555"))


def test_jsonb_text_orders_keys_by_length_and_normalizes_numbers() -> None:
    jsonb = converter_for("jsonb")
    assert jsonb(t('{"bb": 1, "a": [1.50, 1e2, -0], "ccc": {"z": null}}')) == (
        b'{"a": [1.50, 100, 0], "bb": 1, "ccc": {"z": null}}'
    )
    assert jsonb(t('{"a":1,"a":2}')) == b'{"a": 2}'
    assert jsonb(t('"tab\\there"')) == b'"tab\\\\there"'
    assert jsonb(5) == b"5"


@pytest.mark.parametrize(
    "value", [t("{not json"), t('{"a": NaN}'), t('"\\u0000"'), t('"\\ud800"'), b"\x01"]
)
def test_json_that_jsonb_refuses_is_rejected(value: object) -> None:
    with pytest.raises(Rejected):
        converter_for("jsonb")(value)


def test_jsonb_text_of_plain_values() -> None:
    assert jsonb_text({"b": True, "a": None}) == '{"a": null, "b": true}'


def test_blobs_go_to_bytea_as_hex_and_uuids_normalize() -> None:
    assert converter_for("bytea")(b"\x00\xff") == b"\\\\x00ff"
    assert converter_for("bytea")(t("hi")) == b"\\\\x6869"
    uid = "12345678-1234-5678-1234-567812345678"
    assert converter_for("uuid")(t(uid.upper())) == uid.encode()
    assert converter_for("uuid")(bytes.fromhex(uid.replace("-", ""))) == uid.encode()


def test_copy_escape_leaves_ordinary_text_alone() -> None:
    assert copy_escape(b"plain") == b"plain"


def test_a_nineteen_character_time_with_a_zone_is_not_taken_for_a_naive_one() -> None:
    convert = converter_for("timestamp with time zone")
    assert convert(t("2024-03-05 10:11+05")) == b"2024-03-05 05:11:00.000000+00"
    assert convert(t("2024-03-05T10:11:12")) == b"2024-03-05 10:11:12.000000+00"


def test_copy_escape_writes_what_copy_to_prints() -> None:
    """The verification hashes COPY TO's lines against the lines sent: COPY TO names six
    control characters by a letter and leaves the others (here BEL) as they are."""
    assert copy_escape(b"a\\b\tc\nd\re\x08f\x0cg\x0bh\x07i") == (
        b"a\\\\b\\tc\\nd\\re\\bf\\fg\\vh\x07i"
    )
    convert = converter_for("text")
    assert convert(bytearray(b"x\x0by")) == b"x\\vy"


def test_unsupported_target_types_are_refused() -> None:
    with pytest.raises(ValueError, match="no conversion"):
        converter_for("interval")


@pytest.mark.parametrize(
    ("pg_type", "batch"),
    [
        ("bigint", [1, -(2**63), 2**63 - 1]),
        ("integer", [1, None, 7]),
        ("smallint", [1, t("12")]),
        ("text", [t("plain"), t("tab\there"), t("bs\\"), t("vt\x0b"), t("é")]),
        ("text", [t("a"), None, b"blob"]),
        ("character varying(3)", [t("abc"), t("xy")]),
        ("character varying(3)", [t("éé"), t("abc")]),
        ("timestamp with time zone", [t("2024-03-05 10:11:12"), t("2024-02-29 00:00:00")]),
        ("timestamp with time zone", [t("2024-03-05T10:11:12"), t("2024-03-05 10:11+05")]),
        ("timestamp with time zone", [t("2024-03-05 10:11:12"), t("2024-W10-2 10:11:12")]),
        ("timestamp without time zone", [t("2024-03-05 10:11:12"), 1709633472]),
        ("jsonb", [t('{"b": 1, "a": "x"}'), None]),
    ],
)
def test_a_column_at_once_converts_as_each_value_does(pg_type: str, batch: list[object]) -> None:
    convert = converter_for(pg_type)
    expected = [b"\\N" if v is None else convert(v) for v in batch]
    assert [bytes(f) for f in column_converter_for(pg_type)(batch) or []] == expected


@pytest.mark.parametrize(
    ("pg_type", "batch"),
    [
        ("integer", [1, 2**31]),
        ("smallint", [1, t("x")]),
        ("text", [t("ok"), t("nul\x00inside")]),
        ("text", [bytearray(b"\xc3"), bytearray(b"\xa9")]),  # valid only when joined
        ("character varying(3)", [t("abc"), t("abcd")]),
        ("timestamp with time zone", [t("2024-03-05 10:11:12"), t("2023-02-29 00:00:00")]),
    ],
)
def test_a_column_with_a_value_to_reject_is_left_to_the_row_by_row_path(
    pg_type: str, batch: list[object]
) -> None:
    assert column_converter_for(pg_type)(batch) is None
