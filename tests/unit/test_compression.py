"""Backup codecs: every codec round-trips in chunks, and damage is an error, never short data."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lokifi_storage.jobs.compression import CODECS, CorruptStreamError, compressor, decompressor


def _compress(codec: str, data: bytes, chunk: int) -> bytes:
    comp = compressor(codec)
    parts = [comp.compress(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return b"".join(parts) + comp.flush()


def _decompress(codec: str, blob: bytes, chunk: int) -> bytes:
    dec = decompressor(codec)
    out = b"".join(dec.decompress(blob[i : i + chunk]) for i in range(0, len(blob), chunk))
    dec.finish()
    return out


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=200_000),
    write_chunk=st.integers(min_value=1, max_value=70_000),
    read_chunk=st.integers(min_value=1, max_value=70_000),
)
def test_every_codec_round_trips_whatever_the_chunking(
    codec: str, data: bytes, write_chunk: int, read_chunk: int
) -> None:
    blob = _compress(codec, data, write_chunk)
    assert _decompress(codec, blob, read_chunk) == data


@pytest.mark.parametrize("codec", ["zstd", "gzip", "lz4"])
def test_a_flipped_byte_is_reported_as_corruption(codec: str) -> None:
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(50_000)) + b"row\n" * 50_000
    blob = bytearray(_compress(codec, data, 8192))
    blob[len(blob) // 2] ^= 0x55
    with pytest.raises(CorruptStreamError, match=codec):
        _decompress(codec, bytes(blob), 4096)


@pytest.mark.parametrize("codec", ["zstd", "gzip", "lz4"])
def test_a_truncated_stream_is_reported_as_cut_short(codec: str) -> None:
    blob = _compress(codec, b"row\n" * 100_000, 8192)
    with pytest.raises(CorruptStreamError, match="cut short"):
        _decompress(codec, blob[: len(blob) - 7], 4096)


@pytest.mark.parametrize("codec", ["zstd", "gzip", "lz4"])
def test_bytes_after_the_end_of_the_stream_are_reported(codec: str) -> None:
    blob = _compress(codec, b"row\n" * 1000, 8192)
    with pytest.raises(CorruptStreamError, match="after the end"):
        _decompress(codec, blob + b"garbage", 1 << 20)


def test_an_unknown_codec_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="bzip2"):
        compressor("bzip2")
