"""`kubectl lks restore NAME`: the restore runbook of docs/operations.md, names filled in.

A restore is rare and done under pressure; the runbook's steps are printed with this resource's
namespace, bucket, prefix, CronJob, endpoint and the newest backup key already in place, so an
admin copies commands instead of composing them. Nothing is run: restoring is a decision the
runbook leaves to a human (into a new database, then switch the application). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lokifi_storage.builders.names import backup_cronjob_name

__all__ = ["restore_runbook"]


def restore_runbook(
    body: Mapping[str, Any],
    *,
    schedule: str | None = None,
    backup: str | None = None,
    database: str = "lokifi_restored",
) -> str:
    """The numbered steps, for the backup `backup` or the newest of `schedule`."""
    meta = body.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    spec = body.get("spec") or {}
    backups = spec.get("backups") or {}
    schedules = [s["name"] for s in backups.get("schedules") or []]
    if not backups or not schedules:
        return f"{ns}/{name} declares no backups (spec.backups): there is nothing to restore.\n"
    chosen = schedule or schedules[0]
    if chosen not in schedules:
        return f"{ns}/{name} has no backup schedule {chosen!r}; it has: {', '.join(schedules)}\n"
    newest: Mapping[str, Any] = next(
        (b for b in (body.get("status") or {}).get("backups") or [] if b.get("schedule") == chosen),
        {},
    )
    storage = spec.get("objectStorage") or {}
    pick = (
        ["--backup", backup]
        if backup
        else (["--backup", newest["lastKey"]] if newest.get("lastKey") else ["--schedule", chosen])
    )
    where = []
    if storage.get("endpoint"):
        where += ["--endpoint", storage["endpoint"]]
    if storage.get("region"):
        where += ["--region", storage["region"]]
    if backups.get("prefix"):
        where += ["--prefix", backups["prefix"]]
    cronjob = backup_cronjob_name(name, chosen)
    target = f"{name}-restore-target"
    # Backups live in the folder of the resource's namespace and name (and of its database).
    owner = ["--namespace", ns, "--name", name]
    args = ["restore", "--to-env", "RESTORE_URL", "--bucket", backups["bucket"], *owner]
    args += pick + where
    listing = ["lokifi-storage", "backup", "list", "--bucket", backups["bucket"], *owner]
    listing += ["--schedule", chosen, *where]
    when = newest.get("lastSuccessfulTime")
    picked = (
        f"backup {backup}"
        if backup
        else f"the newest {chosen} backup ({newest['lastKey']}, taken {when})"
        if newest.get("lastKey")
        else f"the newest {chosen} backup (none reported in status yet)"
    )
    steps = [
        f"Restore runbook for LokifiStorage {ns}/{name}: {picked}.",
        "Always restore into a NEW database, check it, then switch the application over.",
        "",
        "1. Check the backup (list every backup of the schedule):",
        f"     {' '.join(listing)}",
        "2. Put the target database's URL in a Secret (never on a command line):",
        f"     kubectl -n {ns} create secret generic {target} \\",
        f"       --from-literal=url='postgresql://USER:PASSWORD@HOST:5432/{database}'",
        f"3. Make a Job from the backup CronJob {cronjob}:",
        f"     kubectl -n {ns} create job {name}-restore-$(date +%s) \\",
        f"       --from=cronjob/{cronjob} --dry-run=client -o yaml > restore-job.yaml",
        "   and in restore-job.yaml add to the container's env:",
        "     - name: RESTORE_URL",
        f"       valueFrom: {{secretKeyRef: {{name: {target}, key: url}}}}",
        "   and set its args to:",
        f"     args: [{', '.join(args)}]",
        f"4. kubectl -n {ns} apply -f restore-job.yaml && "
        f"kubectl -n {ns} logs -f job/<the job's name>",
        "5. Check row counts of the important tables in the new database, then point",
        "   spec.postgres.primary.secretRef at a Secret with its URL (the operator rewrites the",
        f"   connection Secret), and delete the Secret {target} and the Job.",
        "",
        "Details: docs/operations.md, 'Restore into a new database' and 'Point-in-time limits'.",
    ]
    return "\n".join(steps) + "\n"
