"""Whole columns of a batch of rows converted at once, to the same COPY fields as the converters
of domain/sqlite_values.py give value by value. Pure.

Its own module because it is a second way to the same result, for speed only: where a batch
holds one kind of value, the checks and the conversion run inside C over the whole column; any
other batch falls back to the converters value by value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, Final

from lokifi_storage.domain.copy_fields import Converter, Rejected, copy_escape, needs_escape
from lokifi_storage.domain.sqlite_values import INT_RANGES, converter_for

__all__ = ["COPY_NULL", "ColumnConverter", "column_converter_for"]

COPY_NULL: Final = b"\\N"
ColumnConverter = Callable[[Sequence[Any]], list[Any] | None]


def _per_value(convert: Converter) -> ColumnConverter:
    def column(values: Sequence[Any]) -> list[Any] | None:
        try:
            return [COPY_NULL if v is None else convert(v) for v in values]
        except Rejected:
            return None

    return column


def _integer_column(kind: str, per_value: ColumnConverter) -> ColumnConverter:
    low, high = INT_RANGES[kind]
    as_text = b"%d".__mod__

    def column(values: Sequence[Any]) -> list[Any] | None:
        if set(map(type, values)) != {int}:
            return per_value(values)
        if min(values) < low or max(values) > high:
            return None
        return list(map(as_text, values))

    return column


def _text_column(max_chars: int | None, per_value: ColumnConverter) -> ColumnConverter:
    def column(values: Sequence[Any]) -> list[Any] | None:
        if set(map(type, values)) != {bytearray}:
            return per_value(values)
        # One pass over the batch's text, NUL-separated: a NUL inside a value shows as one NUL
        # too many, and a value cut in the middle of a UTF-8 sequence stays invalid.
        joined = b"\x00".join(values)
        if joined.count(0) != len(values) - 1:
            return None
        if not joined.isascii():
            try:
                joined.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if max_chars is not None:
                return per_value(values)
        elif max_chars is not None and max(map(len, values)) > max_chars:
            return None
        if needs_escape(joined):
            return list(map(copy_escape, values))
        return list(values)

    return column


def _naive_column(suffix: bytes, per_value: ColumnConverter) -> ColumnConverter:
    tail = repeat(suffix)

    def column(values: Sequence[Any]) -> list[Any] | None:
        if (
            set(map(type, values)) != {bytearray}
            or set(map(len, values)) != {19}
            or set(map(itemgetter(4), values)) != {45}
            or set(map(itemgetter(7), values)) != {45}
            or set(map(itemgetter(10), values)) != {32}
            or set(map(itemgetter(13), values)) != {58}
            or set(map(itemgetter(16), values)) != {58}
        ):
            return per_value(values)
        try:
            for _ in map(dt.datetime.fromisoformat, map(bytearray.decode, values)):
                pass
        except (ValueError, UnicodeDecodeError):
            return per_value(values)
        return list(map(bytearray.__add__, values, tail))

    return column


def column_converter_for(pg_type: str) -> ColumnConverter:
    """Converts one column of a batch of rows at once, to the same fields as the converter of
    `pg_type` value by value, or returns None when a value is to be rejected (the caller then
    converts the batch row by row to find it and say why).

    Where a batch holds one kind of value only (integers in an integer column, text in a text
    column, `YYYY-MM-DD HH:MM:SS` in a timestamp column), the checks and the conversion run
    over the whole column inside C (set, map, join, one UTF-8 decode), not once per value in
    Python: the per-value converters cost more in calls than in work for such values. Any
    other batch goes value by value."""
    base, _, modifier = pg_type.partition("(")
    base = base.strip()
    args = [int(a) for a in re.findall(r"\d+", modifier)]
    per_value = _per_value(converter_for(pg_type))
    if base in INT_RANGES:
        return _integer_column(base, per_value)
    if base == "text":
        return _text_column(None, per_value)
    if base == "character varying":
        return _text_column(args[0] if args else None, per_value)
    if base == "timestamp with time zone" and not args:
        return _naive_column(b".000000+00", per_value)
    if base == "timestamp without time zone" and not args:
        return _naive_column(b".000000", per_value)
    return per_value
