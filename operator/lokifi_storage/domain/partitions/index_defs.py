"""Index definitions from the spec, compared with what the catalog holds, and derived names.

An `IndexSpec` says `columns: [user_id, thread_id, "created_at DESC"]`; `IndexDef` is that
parsed once (column, direction) so the SQL builder never splits strings and the planner can
compare it with an observed index key by key. Comparison is structural and forgiving about
how PostgreSQL prints things (quotes, parentheses, casts), because a false "mismatch" would
make the operator report a healthy index as broken.

Per-partition index names are derived: `<index>_<partition suffix>`, e.g.
`idx_ai_messages_user_thread_time_p2026_01`. PostgreSQL truncates names longer than 63 bytes
without an error, so long names are shortened with a hash that keeps them unique and stable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lokifi_storage.api.spec import IndexSpec
from lokifi_storage.domain.partitions.bounds import MAX_IDENTIFIER_LENGTH
from lokifi_storage.domain.partitions.catalog import ObservedIndex

__all__ = [
    "IndexDef",
    "IndexKeyDef",
    "derived_name",
    "index_def_from_spec",
    "matches",
    "relation_suffix",
]


@dataclass(frozen=True)
class IndexKeyDef:
    """One btree key: a column, its direction and, when written, where NULLs sort."""

    column: str
    desc: bool = False
    nulls_first: bool | None = None  # None: PostgreSQL's default (first for DESC, else last)

    @property
    def effective_nulls_first(self) -> bool:
        return self.desc if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True)
class IndexDef:
    """A spec index, parsed: btree over `keys`, or GIN over to_tsvector(language, column)."""

    name: str
    keys: tuple[IndexKeyDef, ...] = ()
    fulltext_column: str | None = None
    fulltext_language: str = "english"
    where_column: str | None = None
    where_value: bool | int | str | None = None

    @property
    def method(self) -> str:
        return "gin" if self.fulltext_column is not None else "btree"


_KEY = re.compile(
    r"^(?P<column>\S+)(?:\s+(?P<dir>ASC|DESC))?(?:\s+NULLS\s+(?P<nulls>FIRST|LAST))?$",
    re.IGNORECASE,
)


def index_def_from_spec(spec: IndexSpec) -> IndexDef:
    """Parse an IndexSpec; raises ValueError for an index that has neither keys nor fullText."""
    keys: list[IndexKeyDef] = []
    for raw in spec.columns:
        match = _KEY.match(raw.strip())
        if match is None:
            raise ValueError(f"index {spec.name}: cannot read key {raw!r}")
        direction, nulls = match.group("dir"), match.group("nulls")
        keys.append(
            IndexKeyDef(
                match.group("column"),
                desc=bool(direction) and direction.upper() == "DESC",
                nulls_first=None if nulls is None else nulls.upper() == "FIRST",
            )
        )
    if not keys and spec.fullText is None:
        raise ValueError(f"index {spec.name} has neither columns nor fullText")
    if keys and spec.fullText is not None:
        raise ValueError(f"index {spec.name} has both columns and fullText")
    return IndexDef(
        name=spec.name,
        keys=tuple(keys),
        fulltext_column=spec.fullText.column if spec.fullText else None,
        fulltext_language=spec.fullText.language if spec.fullText else "english",
        where_column=spec.where.column if spec.where else None,
        where_value=spec.where.equals if spec.where else None,
    )


def _normalize(text: str) -> str:
    """Drop what PostgreSQL adds when it prints an expression: casts, quotes, parentheses."""
    lowered = text.lower()
    lowered = re.sub(
        r"::[a-z_]+(?: varying| without time zone| with time zone| precision)?", "", lowered
    )
    return re.sub(r"[\s\"()]", "", lowered)


def _literal_text(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def expected_keys(index: IndexDef) -> list[tuple[str, bool, bool]]:
    """The keys as PostgreSQL would print them (normalized), with DESC and NULLS FIRST."""
    if index.fulltext_column is not None:
        lang = index.fulltext_language.replace("'", "''")
        return [(_normalize(f"to_tsvector('{lang}', {index.fulltext_column})"), False, False)]
    return [(_normalize(k.column), k.desc, k.effective_nulls_first) for k in index.keys]


def expected_predicate(index: IndexDef) -> str | None:
    if index.where_column is None or index.where_value is None:
        return None
    return _normalize(f"{index.where_column} = {_literal_text(index.where_value)}")


def matches(index: IndexDef, observed: ObservedIndex) -> bool:
    """Whether `observed` is the index `index` describes (method, keys, direction, predicate)."""
    if observed.method != index.method:
        return False
    keys = [(_normalize(k.text), k.desc, k.nulls_first) for k in observed.keys]
    if index.fulltext_column is not None:
        keys = [(text, desc, False) for text, desc, _ in keys]
    if keys != expected_keys(index):
        return False
    predicate = None if observed.predicate is None else _normalize(observed.predicate)
    return predicate == expected_predicate(index)


def relation_suffix(table: str, relation: str) -> str:
    """`p2026_01` for `ai_messages_p2026_01` of table `ai_messages`; the whole name otherwise."""
    prefix = f"{table}_"
    return relation[len(prefix) :] if relation.startswith(prefix) else relation


def derived_name(base: str, suffix: str) -> str:
    """`<base>_<suffix>`, shortened with a stable hash when PostgreSQL would truncate it."""
    full = f"{base}_{suffix}"
    if len(full.encode()) <= MAX_IDENTIFIER_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    room = MAX_IDENTIFIER_LENGTH - len(suffix.encode()) - len(digest) - 2
    if room >= 8:
        head = base.encode()[:room].decode(errors="ignore")
        return f"{head}_{digest}_{suffix}"
    return f"{full.encode()[: MAX_IDENTIFIER_LENGTH - 9].decode(errors='ignore')}_{digest}"
