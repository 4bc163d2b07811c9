"""Streaming codecs for backups: zstd, gzip, lz4 and none, chunk in, chunk out.

pg_dump runs with `-Z0` and the compression happens here, so the choice is the spec's, not
pg_dump's, and the same code reads the object back. Every compressed format carries a checksum
of the content (zstd and lz4 frames with content checksums on, gzip's CRC32): a flipped byte or
a truncated object is an error on the way back, never a silently shorter dump.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

import lz4.frame
import zstandard

__all__ = [
    "CODECS",
    "Compressor",
    "CorruptStreamError",
    "Decompressor",
    "compressor",
    "decompressor",
]

CODECS = ("zstd", "gzip", "lz4", "none")
ZSTD_LEVEL = 3
GZIP_LEVEL = 6


class CorruptStreamError(Exception):
    """The compressed bytes are damaged or cut short; the message says which codec saw it."""


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...
    def finish(self) -> None:
        """Raise CorruptStreamError unless the stream ended exactly at a complete frame."""


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def decompress(self, data: bytes) -> bytes:
        return data

    def finish(self) -> None:
        return None


class _Zstd:
    def __init__(self, level: int, threads: int) -> None:
        params = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads)
        self._obj = params.compressobj()

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._obj.compress(data)
        return out

    def flush(self) -> bytes:
        out: bytes = self._obj.flush()
        return out


class _Gzip:
    def __init__(self, level: int) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


class _Lz4:
    def __init__(self) -> None:
        self._obj = lz4.frame.LZ4FrameCompressor(content_checksum=True)
        self._header: bytes | None = self._obj.begin()

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._obj.compress(data)
        if self._header is not None:
            out, self._header = self._header + out, None
        return out

    def flush(self) -> bytes:
        out: bytes = self._obj.flush()
        if self._header is not None:
            out, self._header = self._header + out, None
        return out


class _StreamDecompressor:
    """Wraps a decompressobj-like object that has `.eof` and `.unused_data`."""

    def __init__(self, codec: str, obj: Any, errors: tuple[type[BaseException], ...]) -> None:
        self._codec = codec
        self._obj = obj
        self._errors = errors

    def decompress(self, data: bytes) -> bytes:
        if not data:
            return b""
        if self._obj.eof:
            raise CorruptStreamError(f"{self._codec}: data after the end of the compressed stream")
        try:
            out: bytes = self._obj.decompress(data)
        except self._errors as error:
            raise CorruptStreamError(f"{self._codec}: {error}") from error
        if self._obj.eof and self._obj.unused_data:
            raise CorruptStreamError(f"{self._codec}: data after the end of the compressed stream")
        return out

    def finish(self) -> None:
        if not self._obj.eof:
            raise CorruptStreamError(f"{self._codec}: the compressed stream is cut short")


def compressor(codec: str, *, level: int | None = None, threads: int = 0) -> Compressor:
    """A fresh compressor for `codec`; `threads` is used by zstd only (0: in the caller's)."""
    if codec == "zstd":
        return _Zstd(ZSTD_LEVEL if level is None else level, threads)
    if codec == "gzip":
        return _Gzip(GZIP_LEVEL if level is None else level)
    if codec == "lz4":
        return _Lz4()
    if codec == "none":
        return _Identity()
    raise ValueError(f"unknown compression {codec!r}; choose from {', '.join(CODECS)}")


def decompressor(codec: str) -> Decompressor:
    """A fresh decompressor for `codec` that raises CorruptStreamError on damaged input."""
    if codec == "zstd":
        obj = zstandard.ZstdDecompressor().decompressobj()
        return _StreamDecompressor("zstd", obj, (zstandard.ZstdError,))
    if codec == "gzip":
        return _StreamDecompressor("gzip", zlib.decompressobj(31), (zlib.error,))
    if codec == "lz4":
        obj = lz4.frame.LZ4FrameDecompressor()
        return _StreamDecompressor("lz4", obj, (RuntimeError,))
    if codec == "none":
        return _Identity()
    raise ValueError(f"unknown compression {codec!r}; choose from {', '.join(CODECS)}")
