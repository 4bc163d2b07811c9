"""`kubectl lks`: the kubectl plugin for LokifiStorage (installed as the `kubectl-lks` command).

    kubectl lks status NAME                  every part on one screen
    kubectl lks plan NAME [-o json]          what a reconcile would change now (exit 2: changes)
    kubectl lks backup NAME --schedule daily run one backup now, as a Job made from its CronJob
    kubectl lks restore NAME [--schedule S]  the restore runbook with the names filled in

kubectl finds the plugin on PATH and passes every argument after `lks`; the namespace comes from
-n, else the kubeconfig's current context, else `default`. Colour on a terminal, plain when piped
(--color always|never to choose).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from kubernetes import config as k8s_config
from pydantic import ValidationError

from lokifi_storage.admin.paint import ColorMode, Painter
from lokifi_storage.admin.plan_cli import Output, plan_body, run_plan
from lokifi_storage.admin.runbook import restore_runbook
from lokifi_storage.admin.status_view import status_text
from lokifi_storage.builders.labels import Owner
from lokifi_storage.builders.names import backup_cronjob_name
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.kube import CRONJOBS, KubeClient, Resource
from lokifi_storage.reconcile.owned_cronjobs import owned_selector
from lokifi_storage.reconcile.resource import LOKIFI_STORAGES, format_validation_error

__all__ = ["app", "main"]

JOBS = Resource("batch", "v1", "jobs")

app = typer.Typer(
    name="kubectl-lks",
    help="LokifiStorage at a glance: status, plan, an on-demand backup, the restore runbook.",
    no_args_is_help=True,
    add_completion=False,
)

Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the context's).")
]
Kubeconfig = Annotated[str | None, typer.Option(help="kubeconfig (default $KUBECONFIG).")]
Color = Annotated[ColorMode, typer.Option(help="auto (colour on a terminal), always, never.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _context_namespace(kubeconfig: str | None) -> str:
    try:
        _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except Exception:  # no kubeconfig, or in a pod: the default namespace
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


def _connect(kubeconfig: str | None) -> KubeClient:
    try:
        return KubeClient.from_environment(kubeconfig or os.environ.get("KUBECONFIG"))
    except Exception as error:
        raise _fail(f"cannot load the kubeconfig: {type(error).__name__}") from None


def _resource(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    try:
        body = kube.get(LOKIFI_STORAGES, namespace, name)
    except ClientError as error:
        raise _fail(error.message) from None
    if body is None:
        raise _fail(f"LokifiStorage {name!r} not found in namespace {namespace!r}")
    return body


def _owned_cronjobs(kube: KubeClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    meta = body["metadata"]
    owner = Owner(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])
    return kube.list_owned(CRONJOBS, owner.namespace, owner.uid, owned_selector(owner))


@app.command()
def status(
    name: str,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    color: Color = ColorMode.AUTO,
) -> None:
    """Every part of NAME on one screen: conditions, partitions, replicas, Redis, buckets,
    backups, capacity, CronJobs."""
    ns = namespace or _context_namespace(kubeconfig)
    kube = _connect(kubeconfig)
    try:
        body = _resource(kube, ns, name)
        cronjobs = _owned_cronjobs(kube, body)
    except ClientError as error:
        raise _fail(error.message) from None
    finally:
        kube.close()
    paint = Painter.for_stream(color)
    # color=: click strips ANSI codes from output that is not a terminal unless told otherwise.
    typer.echo(status_text(body, cronjobs, datetime.now(UTC), paint), nl=False, color=paint.enabled)


@app.command()
def plan(
    name: str,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json.")] = Output.TEXT,
    color: Color = ColorMode.AUTO,
) -> None:
    """What a reconcile of NAME would change now (exit 0: nothing, 2: changes, 1: error).

    The live resource's spec, planned against the live servers with the Secrets it names
    (`lokifi-storage plan` for a manifest not applied yet)."""
    ns = namespace or _context_namespace(kubeconfig)
    kube = _connect(kubeconfig)
    try:
        body = _resource(kube, ns, name)
        view = plan_body(body, ns, kube)
    except ValidationError as error:
        raise _fail(f"invalid spec: {format_validation_error(error)}") from None
    except ClientError as error:
        raise _fail(error.message) from None
    finally:
        kube.close()
    raise typer.Exit(run_plan(view, output, color))


def job_from_cronjob(cronjob: dict[str, Any], job_name: str) -> dict[str, Any]:
    """The Job `kubectl create job NAME --from=cronjob/...` makes: the CronJob's jobTemplate,
    owned by the CronJob, annotated as a manual instantiation."""
    template = cronjob["spec"]["jobTemplate"]
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": cronjob["metadata"]["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                **(meta.get("annotations") or {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cronjob["metadata"]["name"],
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }


@app.command()
def backup(
    name: str,
    schedule: Annotated[str, typer.Option(help="The backup schedule to run now (e.g. daily).")],
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Run one backup of SCHEDULE now: a Job made from its CronJob (what it runs, with --keep
    and --verify as configured), like `kubectl create job --from=cronjob/...`."""
    ns = namespace or _context_namespace(kubeconfig)
    kube = _connect(kubeconfig)
    try:
        body = _resource(kube, ns, name)
        schedules = [
            s["name"]
            for s in ((body.get("spec") or {}).get("backups") or {}).get("schedules") or []
        ]
        if schedule not in schedules:
            raise _fail(
                f"{name} has no backup schedule {schedule!r}"
                + (f"; it has: {', '.join(schedules)}" if schedules else " (no spec.backups)")
            )
        cronjob_name = backup_cronjob_name(name, schedule)
        cronjob = next(
            (c for c in _owned_cronjobs(kube, body) if c["metadata"]["name"] == cronjob_name), None
        )
        if cronjob is None:
            raise _fail(f"CronJob {cronjob_name} not found: is the operator running for {ns}?")
        suffix = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(2)
        job_name = f"{cronjob_name[: 63 - len(suffix) - 8]}-manual-{suffix}"
        kube.create(JOBS, job_from_cronjob(cronjob, job_name))
    except ClientError as error:
        raise _fail(error.message) from None
    finally:
        kube.close()
    typer.echo(f"job.batch/{job_name} created from cronjob/{cronjob_name}")
    typer.echo(f"follow it: kubectl -n {ns} logs -f job/{job_name}")


@app.command()
def restore(
    name: str,
    schedule: Annotated[
        str | None, typer.Option(help="Restore the newest backup of this schedule.")
    ] = None,
    backup_key: Annotated[str | None, typer.Option("--backup", help="This backup's key.")] = None,
    database: Annotated[
        str, typer.Option(help="Name of the new database to restore into.")
    ] = "lokifi_restored",
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Print the restore runbook for NAME with its names filled in; runs nothing."""
    ns = namespace or _context_namespace(kubeconfig)
    kube = _connect(kubeconfig)
    try:
        body = _resource(kube, ns, name)
    finally:
        kube.close()
    typer.echo(
        restore_runbook(body, schedule=schedule, backup=backup_key, database=database), nl=False
    )


def main() -> None:
    """Console-script entry point (`kubectl-lks`)."""
    app()
