"""`kubectl lks status NAME`: every part of one LokifiStorage on one screen.

Everything shown comes from what the operator already reports (the resource's spec and status)
and from its CronJobs, so the command needs read access to the resource and CronJobs only, no
database or Secret. Pure: the caller fetches, this module lays out; the time is a parameter so
ages are testable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lokifi_storage.admin.paint import Painter
from lokifi_storage.api.quantity import format_bytes
from lokifi_storage.api.timestamps import parse_rfc3339

__all__ = ["status_text"]


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    try:
        then = parse_rfc3339(stamp)
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell (measured without colour codes)."""
    if not rows:
        return []
    plain = re.compile(r"\033\[[0-9;]*m")
    widths = [max(len(plain.sub("", row[i])) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [cell + " " * (widths[i] - len(plain.sub("", cell))) for i, cell in enumerate(row)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _conditions(status: Mapping[str, Any], paint: Painter) -> list[str]:
    rows = [["CONDITION", "STATUS", "REASON", "MESSAGE"]]
    for c in status.get("conditions") or []:
        good = c.get("status") == "True"
        if c.get("type") in ("Reconciling", "Stalled"):
            good = not good
        message = str(c.get("message") or "")
        rows.append(
            [
                c.get("type", ""),
                paint.state(c.get("status", ""), good),
                c.get("reason", ""),
                message if len(message) <= 90 else message[:87] + "...",
            ]
        )
    return _table(rows)


def _size_of(table: str, status: Mapping[str, Any]) -> str:
    largest = {
        r.get("name"): r.get("bytes") for r in (status.get("storage") or {}).get("largest") or []
    }
    qualified = table if "." in table else f"public.{table}"
    size = largest.get(qualified)
    return format_bytes(int(size)) if isinstance(size, int) else "-"


def _partitions(spec: Mapping[str, Any], status: Mapping[str, Any], paint: Painter) -> list[str]:
    rows = [["TABLE", "PARTITIONS", "OLDEST", "NEWEST", "IN DEFAULT", "ARCHIVED", "SIZE"]]
    for p in status.get("partitions") or []:
        rows.append(
            [
                p.get("table", ""),
                str(p.get("count", 0)),
                (p.get("oldest") or "-")[:10],
                (p.get("newest") or "-")[:10],
                paint.state(str(p.get("inDefault", 0)), not p.get("inDefault")),
                str(p.get("archived", 0)),
                _size_of(p.get("table", ""), status),
            ]
        )
    lines = _table(rows)
    pending = {p.get("table"): p for p in status.get("partitions") or []}
    for table in (spec.get("postgres") or {}).get("tables") or []:
        archive, retention = table.get("archive"), table.get("retention")
        if not archive and not retention:
            continue
        seen = pending.get(table["name"]) or {}
        parts = []
        if archive:
            parts.append(f"archive to {archive.get('schema')} after {archive.get('afterDays')}d")
            if archive.get("compressAfterDays"):
                waiting = seen.get("pendingCompress", 0)
                parts.append(
                    f"compress after {archive['compressAfterDays']}d: "
                    + paint.state(f"{waiting} pending", not waiting)
                )
        if retention:
            export = retention.get("exportTo")
            where = f"export to s3://{export['bucket']} then drop" if export else "drop"
            waiting = seen.get("pendingExport", 0)
            parts.append(
                f"{where} after {retention.get('dropAfterDays')}d: "
                + paint.state(f"{waiting} pending", not waiting)
            )
        lines.append(f"  {table['name']}: " + "; ".join(parts))
    return lines


def _replicas(status: Mapping[str, Any], paint: Painter) -> list[str]:
    rows = [["REPLICA", "HEALTHY", "LAG", "STREAMING", "REASON"]]
    for r in status.get("replicas") or []:
        lag = r.get("lagSeconds")
        rows.append(
            [
                r.get("name", ""),
                paint.state("yes" if r.get("healthy") else "no", bool(r.get("healthy"))),
                "-" if lag is None else f"{lag:g}s",
                {True: "yes", False: "no"}.get(r.get("streaming"), "-"),
                r.get("reason") or "",
            ]
        )
    return _table(rows)


def _redis(spec: Mapping[str, Any], status: Mapping[str, Any], paint: Painter) -> list[str]:
    redis = status.get("redis") or {}
    settings = (spec.get("redis") or {}).get("settings") or {}
    state = redis.get("clusterState", "unknown")
    lines = [
        f"  cluster {paint.state(state, state == 'ok')}: {redis.get('masters', '?')} masters, "
        f"{redis.get('replicas', '?')} replicas, {redis.get('slotsOk', '?')}/16384 slots ok"
    ]
    wanted = " ".join(f"{k}={v}" for k, v in settings.items()) or "(none declared)"
    rows = [["NODE", "USED MEMORY", "SETTINGS"]]
    for node, used in sorted((redis.get("usedMemoryBytes") or {}).items()):
        rows.append([node, format_bytes(int(used)), wanted])
    return lines + _table(rows)


def _buckets(status: Mapping[str, Any], paint: Painter) -> list[str]:
    rows = [["BUCKET", "EXISTS", "MANAGED RULES", "OTHER RULES"]]
    for b in (status.get("objectStorage") or {}).get("buckets") or []:
        exists = b.get("exists")
        rows.append(
            [
                b.get("name", ""),
                paint.state({True: "yes", False: "no"}.get(exists, "?"), exists),
                ", ".join(b.get("managedRules") or []) or "-",
                str(b.get("foreignRules", 0)),
            ]
        )
    return _table(rows)


def _backups(
    spec: Mapping[str, Any], status: Mapping[str, Any], now: datetime, paint: Painter
) -> list[str]:
    by_schedule = {b.get("schedule"): b for b in status.get("backups") or []}
    rows = [["SCHEDULE", "CRON", "LAST SUCCESS", "AGE", "SIZE", "KEPT", "VERIFIED"]]
    for schedule in (spec.get("backups") or {}).get("schedules") or []:
        seen = by_schedule.get(schedule["name"]) or {}
        size = seen.get("lastSizeBytes")
        rows.append(
            [
                schedule["name"],
                schedule.get("schedule", ""),
                seen.get("lastSuccessfulTime") or paint("none yet", "yellow"),
                _age(seen.get("lastSuccessfulTime"), now),
                "-" if size is None else format_bytes(int(size)),
                str(seen.get("count", 0)),
                _verified(seen, paint),
            ]
        )
    return _table(rows)


def _verified(seen: Mapping[str, Any], paint: Painter) -> str:
    """`Passed (Restore)`, `Failed (Archive)`, `NOT VERIFIED` for GLACIER schedules, or `-`."""
    verify, kind = seen.get("lastVerifyResult"), seen.get("lastVerifyKind")
    if kind == "NotVerified":
        return paint("NOT VERIFIED", "yellow")
    if not verify:
        return "-"
    text = f"{verify} ({kind})" if kind else verify
    return paint.state(text, verify == "Passed")


def _capacity(status: Mapping[str, Any], paint: Painter) -> list[str]:
    storage = status.get("storage") or {}
    if not storage:
        return ["  not measured yet"]
    used = storage.get("usedPercent")
    capacity = storage.get("capacityBytes")
    growth = storage.get("growthBytesPerDay")
    line = f"  database {storage.get('databaseSize') or '-'}"
    if capacity:
        line += f" of {format_bytes(int(capacity))}"
    if used is not None:
        line += f" ({used:g}% used)"
    out = [line]
    out.append(
        "  growth "
        + ("-" if growth is None else f"{format_bytes(int(growth))}/day")
        + "; projected full "
        + paint(storage.get("projectedFullDate") or "not projected", "cyan")
    )
    return out


def _cronjobs(cronjobs: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    rows = [["CRONJOB", "SCHEDULE", "LAST SCHEDULED", "LAST SUCCESS"]]
    for cj in sorted(cronjobs, key=lambda c: c["metadata"]["name"]):
        st = cj.get("status") or {}
        rows.append(
            [
                cj["metadata"]["name"],
                cj.get("spec", {}).get("schedule", ""),
                _age(st.get("lastScheduleTime"), now)
                + (" ago" if st.get("lastScheduleTime") else ""),
                _age(st.get("lastSuccessfulTime"), now)
                + (" ago" if st.get("lastSuccessfulTime") else ""),
            ]
        )
    return _table(rows)


def status_text(
    body: Mapping[str, Any],
    cronjobs: Sequence[Mapping[str, Any]],
    now: datetime,
    paint: Painter,
) -> str:
    """The one-screen view of `body` (a LokifiStorage as the API server has it)."""
    meta = body.get("metadata") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    head = (
        f"LokifiStorage {meta.get('namespace')}/{meta.get('name')}  Ready: "
        + paint.state(str(ready.get("status", "Unknown")), ready.get("status") == "True")
        + f" ({ready.get('reason', '-')})  generation {meta.get('generation', '?')}, "
        f"observed {status.get('observedGeneration', '-')}"
    )
    lines = [paint(head, "bold")]
    if spec.get("dryRun"):
        plan = status.get("plan") or {}
        lines.append(paint(f"  dry run: {plan.get('summary', 'no plan reported yet')}", "yellow"))

    def section(title: str, body_lines: list[str]) -> None:
        lines.extend(["", paint(title, "bold"), *(body_lines or ["  -"])])

    section("Conditions", _conditions(status, paint))
    if spec.get("postgres"):
        section("Partitions", _partitions(spec, status, paint))
        section("Replicas", _replicas(status, paint))
    if spec.get("redis"):
        section("Redis", _redis(spec, status, paint))
    if (spec.get("objectStorage") or {}).get("buckets"):
        section("Buckets", _buckets(status, paint))
    if spec.get("backups"):
        section("Backups", _backups(spec, status, now, paint))
    if spec.get("monitoring"):
        section("Capacity", _capacity(status, paint))
    secret = (status.get("connectionSecret") or {}).get("name")
    if secret:
        section("Connection Secret", [f"  {secret}"])
    if cronjobs:
        section("CronJobs", _cronjobs(cronjobs, now))
    return "\n".join(lines) + "\n"
