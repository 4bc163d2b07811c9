from collections.abc import Callable, Sequence
from typing import Any

class Error(Exception): ...

class Reader:
    def __init__(self, uri: str, busy_timeout_ms: int = ...) -> None: ...
    def close(self) -> None: ...
    def hours(self, sql: str, other: Callable[[Any], None], /) -> dict[int, int]: ...
    def convert(
        self,
        sql: str,
        params: tuple[int, ...],
        kinds: tuple[int, ...],
        limits: tuple[int, ...],
        not_null: tuple[bool, ...],
        hashed: bool,
        partition_index: int,
        starts: list[bytes],
        ends: list[bytes],
        width: int,
        batch: int,
        /,
    ) -> tuple[
        tuple[list[bytes], list[int], list[int]],
        tuple[list[bytes], list[int], list[int]],
        list[tuple[Any, ...]],
        int | None,
    ]: ...

def digest_lines(
    lines: Sequence[bytes | bytearray | memoryview], stamps: bytes = ..., /
) -> tuple[int, int]: ...
def md5_head(line: bytes, /) -> int: ...
