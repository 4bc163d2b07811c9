"""Where backups live in the bucket, and what a listing of the bucket says about them.

One backup is up to four objects side by side, all named after the UTC time the run started,
in the folder of the resource and of the database it dumps:

    <prefix><folder>/<schedule>/<stamp>.dump[.zst|.gz|.lz4]   pg_dump custom format, compressed
    <prefix><folder>/<schedule>/<stamp>.manifest.json        size, sha256, versions, row counts
    <prefix><folder>/<schedule>/<stamp>.verify-ok.json       written by a successful verify
    <prefix><folder>/<schedule>/<stamp>.verify-failed.json   written by a failed verify

    <folder> = <namespace>/<resource name>/<system_identifier>-<database>

The folder carries the resource's namespace and the identity of the source (PostgreSQL's
system_identifier of the server, and the database name), so two same-named resources in two
namespaces sharing a bucket, or one resource whose primary now points at another database,
never list, prune, restore or report each other's backups: everything here works inside one
folder. `<stamp>` is `YYYYmmddTHHMMSS.mmmZ`, so the lexical order of keys is the order in time.

Why a sidecar manifest rather than object metadata: S3 fixes user metadata when a multipart
upload is created, before the size, checksum and end time are known, and rewriting it later
means copying the whole object (impossible for GLACIER classes). The 2 KB metadata limit also
cannot hold a row-count manifest of a real schema. The create job writes the manifest *before*
it completes the multipart upload, so every dump object that becomes visible already has its
manifest: a dump is a backup exactly when both exist.

The verify result is in the marker's *name* so the operator learns everything it reports from
one LIST, without reading any object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "EXTENSIONS",
    "BackupEntry",
    "ListedObject",
    "backup_folder",
    "catalog",
    "compression_of",
    "dump_key",
    "format_stamp",
    "manifest_key",
    "name_prefix",
    "parse_stamp",
    "schedule_prefix",
    "sidecar_key",
    "source_id",
    "stamp_of",
    "verify_key",
    "verify_suffix",
]

# The dump object's suffix per compression; the restore side picks the codec from it.
EXTENSIONS: dict[str, str] = {"zstd": ".zst", "gzip": ".gz", "lz4": ".lz4", "none": ""}

_STAMP_FORMAT = "%Y%m%dT%H%M%S"
_KEY = re.compile(
    r"^(?P<schedule>[^/]+)/(?P<stamp>\d{8}T\d{6}\.\d{3}Z)"
    r"\.(?P<kind>dump(?:\.zst|\.gz|\.lz4)?|manifest\.json"
    r"|verify-(?:ok|failed)(?:\.archive)?\.json)$"
)
# Verify markers: `verify-ok.json`/`verify-failed.json` for a restore into a scratch server,
# the same with `.archive` before `.json` for a verification without a database.
VERIFY_KINDS = {"restore": "", "archive": ".archive"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SEGMENT = re.compile(r"^[A-Za-z0-9%][A-Za-z0-9._%-]*$")


def _check_name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, '.', '_' or '-'")
    return value


def _check_folder(value: str) -> str:
    if not all(_SEGMENT.match(segment) for segment in value.split("/")):
        raise ValueError(
            f"backup folder {value!r} must be '/'-separated letters, digits, '.', '_' or '-'"
        )
    return value


def source_id(system_identifier: str, database: str) -> str:
    """`<system_identifier>-<database>`, the database name percent-encoded where needed."""
    return f"{system_identifier}-{quote(database, safe='')}"


def backup_folder(namespace: str, name: str, source: str) -> str:
    """The folder of one resource's backups of one source (see the module doc)."""
    _check_name("namespace", namespace)
    _check_name("backup name", name)
    return _check_folder(f"{namespace}/{name}/{source}")


def name_prefix(prefix: str, name: str) -> str:
    """Every object of one folder's backups starts with this (prefix gets a trailing '/').

    `name` is a folder from `backup_folder` (or any '/'-separated name of safe segments).
    """
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"{prefix}{_check_folder(name)}/"


def schedule_prefix(prefix: str, name: str, schedule: str) -> str:
    return f"{name_prefix(prefix, name)}{_check_name('schedule', schedule)}/"


def format_stamp(moment: datetime) -> str:
    """`20260205T020000.123Z`: UTC, millisecond precision, sorts like the time it names."""
    utc = moment.astimezone(UTC)
    return f"{utc.strftime(_STAMP_FORMAT)}.{utc.microsecond // 1000:03d}Z"


def parse_stamp(stamp: str) -> datetime:
    base, _, millis = stamp.rstrip("Z").partition(".")
    parsed = datetime.strptime(base, _STAMP_FORMAT).replace(tzinfo=UTC)
    return parsed.replace(microsecond=int(millis or 0) * 1000)


def stamp_of(key: str) -> str | None:
    """The run stamp a key of this layout carries (`.../<schedule>/<stamp>.<kind>`), else None."""
    tail = "/".join(key.rsplit("/", 2)[-2:])
    match = _KEY.match(tail)
    return None if match is None else match["stamp"]


def dump_key(prefix: str, name: str, schedule: str, stamp: str, compression: str) -> str:
    return f"{schedule_prefix(prefix, name, schedule)}{stamp}.dump{EXTENSIONS[compression]}"


def manifest_key(prefix: str, name: str, schedule: str, stamp: str) -> str:
    return f"{schedule_prefix(prefix, name, schedule)}{stamp}.manifest.json"


def verify_key(
    prefix: str, name: str, schedule: str, stamp: str, *, ok: bool, kind: str = "restore"
) -> str:
    return f"{schedule_prefix(prefix, name, schedule)}{stamp}{verify_suffix(ok, kind)}"


def verify_suffix(ok: bool, kind: str) -> str:
    """`.verify-ok.json`, `.verify-failed.archive.json`, ...: outcome and kind in the name."""
    return f".verify-{'ok' if ok else 'failed'}{VERIFY_KINDS[kind]}.json"


def sidecar_key(dump: str, suffix: str) -> str:
    """The key next to a dump key: `...<stamp>.dump.zst` -> `...<stamp><suffix>`."""
    head, sep, _ = dump.rpartition(".dump")
    if not sep:
        raise ValueError(f"{dump!r} is not a dump key")
    return head + suffix


def compression_of(dump: str) -> str:
    """The compression a dump key's suffix names (`.dump.zst` -> zstd, `.dump` -> none)."""
    _, sep, suffix = dump.rpartition(".dump")
    if not sep:
        raise ValueError(f"{dump!r} is not a dump key")
    for compression, extension in EXTENSIONS.items():
        if suffix == extension:
            return compression
    raise ValueError(f"{dump!r} has an unknown compression suffix {suffix!r}")


@dataclass(frozen=True)
class ListedObject:
    """One object as a LIST returns it."""

    key: str
    size: int
    last_modified: datetime


@dataclass
class BackupEntry:
    """Everything the bucket holds for one run of one schedule.

    `complete` means the dump and its manifest both exist: a backup. `verified` is the outcome
    of the most recent verify (None when never verified) and `verified_at` its time.
    """

    schedule: str
    stamp: str
    started_at: datetime
    dump: ListedObject | None = None
    manifest: ListedObject | None = None
    verify_ok: ListedObject | None = None
    verify_failed: ListedObject | None = None
    other: list[ListedObject] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.dump is not None and self.manifest is not None

    @property
    def verified(self) -> bool | None:
        marker = self._latest_marker()
        if marker is None:
            return None
        return marker is self.verify_ok

    @property
    def verify_kind(self) -> str | None:
        """ "restore" or "archive": what the most recent verify did."""
        marker = self._latest_marker()
        if marker is None:
            return None
        return "archive" if marker.key.endswith(".archive.json") else "restore"

    @property
    def verified_at(self) -> datetime | None:
        marker = self._latest_marker()
        return None if marker is None else marker.last_modified

    @property
    def finished_at(self) -> datetime | None:
        """When the dump became visible: the completion of its multipart upload."""
        return None if self.dump is None else self.dump.last_modified

    def _latest_marker(self) -> ListedObject | None:
        markers = [m for m in (self.verify_ok, self.verify_failed) if m is not None]
        if not markers:
            return None
        # Equal times: a failure is the safer reading.
        return max(markers, key=lambda m: (m.last_modified, m is self.verify_failed))

    def dump_keys(self) -> list[str]:
        return [o.key for o in ([self.dump] if self.dump is not None else []) + self.other]

    def sidecar_keys(self) -> list[str]:
        sidecars = (self.manifest, self.verify_ok, self.verify_failed)
        return [o.key for o in sidecars if o is not None]

    def keys(self) -> list[str]:
        """Every key of the run, dumps first.

        Pruning deletes in this order: if it is interrupted after the dump went, the leftover
        manifest is an orphan sidecar that the next prune removes. The other order could leave
        a dump without its manifest, which no prune would ever touch.
        """
        return self.dump_keys() + self.sidecar_keys()


def _newer(current: ListedObject | None, candidate: ListedObject) -> ListedObject:
    if current is None or candidate.last_modified >= current.last_modified:
        return candidate
    return current


def catalog(prefix: str, name: str, objects: Iterable[ListedObject]) -> list[BackupEntry]:
    """Group a LIST of `name_prefix(prefix, name)` into runs, oldest first.

    Keys that do not follow the layout are ignored: they are not this tool's, so nothing here
    will ever judge (or prune) them.
    """
    base = name_prefix(prefix, name)
    entries: dict[tuple[str, str], BackupEntry] = {}
    for obj in objects:
        if not obj.key.startswith(base):
            continue
        match = _KEY.match(obj.key[len(base) :])
        if match is None:
            continue
        schedule, stamp, kind = match["schedule"], match["stamp"], match["kind"]
        entry = entries.get((schedule, stamp))
        if entry is None:
            entry = BackupEntry(schedule=schedule, stamp=stamp, started_at=parse_stamp(stamp))
            entries[(schedule, stamp)] = entry
        if kind.startswith("dump"):
            if entry.dump is None:
                entry.dump = obj
            else:  # two compressions of one stamp: keep both visible to pruning
                entry.other.append(obj)
        elif kind == "manifest.json":
            entry.manifest = obj
        elif kind.startswith("verify-ok"):
            entry.verify_ok = _newer(entry.verify_ok, obj)
        else:
            entry.verify_failed = _newer(entry.verify_failed, obj)
    return sorted(entries.values(), key=lambda e: (e.schedule, e.stamp))
