"""`lokifi-storage plan -f resource.yaml`: what a reconcile would change now, on every part.

The plan is the reconcile's own pass with apply off (ResourceReconciler.plan): the same
observations of PostgreSQL, Redis, S3 and the owned Kubernetes objects, the same planners, and
their writes listed instead of made. Credentials are the ones the operator uses: the Secrets the
spec names, read from the resource's namespace through the kubeconfig. With --offline (no
Kubernetes API) only what the primary's URL reaches is planned (the partitions), from
$LOKIFI_PRIMARY_URL, and the rest is listed as not planned.

Exit codes, as `terraform plan -detailed-exitcode`: 0 nothing would change, 2 something would
change, 1 an error (unreadable manifest, invalid spec, or a part that could not be observed:
its changes would be missing from the plan).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from lokifi_storage.admin.paint import ColorMode, Painter
from lokifi_storage.admin.plan_view import PlanView, plan_json, plan_text
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.coordinates import KIND
from lokifi_storage.api.spec import SecretKeyRef
from lokifi_storage.builders.cronjobs import DEFAULT_IMAGE, JobSettings
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.errors import ClientError
from lokifi_storage.clients.kube import CRONJOBS, KubeClient
from lokifi_storage.domain.job_env import JOB_IMAGE_ENV, PRIMARY_URL_ENV
from lokifi_storage.reconcile.owned_cronjobs import owned_selector
from lokifi_storage.reconcile.resource import (
    LOKIFI_STORAGES,
    ResourceReconciler,
    format_validation_error,
)
from lokifi_storage.reconcile.results import ReconcilerConfig
from lokifi_storage.reconcile.secrets import MissingSecretError, SecretReader

__all__ = ["Output", "plan", "plan_body", "run_plan"]

EXIT_CHANGES = 2


class Output(StrEnum):
    """-o: text for humans, json for pipelines."""

    TEXT = "text"
    JSON = "json"


class EnvSecrets(SecretReader):
    """Credentials without a Kubernetes API: the primary's URL from an environment variable;
    any other Secret is reported missing, so its part is listed as not planned."""

    def __init__(self, primary: SecretKeyRef | None, url: str | None, namespace: str) -> None:
        self._primary = primary
        self._url = url
        self._ns = namespace

    def value(self, ref: SecretKeyRef) -> str:
        if self._primary is not None and ref == self._primary and self._url:
            return self._url
        raise MissingSecretError(
            Reason.SECRET_NOT_FOUND,
            f"Secret {ref.name!r}: no Kubernetes API to read it from (set KUBECONFIG)",
        )

    def data(self, name: str) -> dict[str, str]:
        raise MissingSecretError(
            Reason.SECRET_NOT_FOUND,
            f"Secret {name!r}: no Kubernetes API to read it from (set KUBECONFIG)",
        )

    def names_read(self) -> list[str]:
        return []


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def read_manifest(path: Path) -> dict[str, Any]:
    """The LokifiStorage of a manifest file (or a bare spec, wrapped)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as error:
        raise _fail(f"cannot read {path}: {type(error).__name__}") from None
    body = next((d for d in docs if d.get("kind") == KIND), None)
    if body is None:
        body = {"metadata": {"name": path.stem}, "spec": docs[0] if docs else {}}
    return body


def _job_image(kube: KubeClient, owner: Owner, given: str | None) -> str:
    """The job image the operator uses: as given, else the one its CronJobs run now."""
    if given:
        return given
    if owner.uid:
        for cronjob in kube.list_owned(CRONJOBS, owner.namespace, owner.uid, owned_selector(owner)):
            containers = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            if containers and containers[0].get("image"):
                return str(containers[0]["image"])
    return DEFAULT_IMAGE


def plan_body(
    body: Mapping[str, Any],
    namespace: str,
    kube: KubeClient | None,
    *,
    now: dt.datetime | None = None,
    url_env: str = PRIMARY_URL_ENV,
    job_image: str | None = None,
) -> PlanView:
    """Plan `body` (a LokifiStorage; the live one's uid and status when it exists)."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    clock = (lambda: now) if now is not None else None
    if kube is None:
        reconciler = ResourceReconciler(_NoKube(), clock=clock)  # type: ignore[arg-type]
        spec = body.get("spec") or {}
        primary = ((spec.get("postgres") or {}).get("primary") or {}).get("secretRef")
        ref = SecretKeyRef.model_validate(primary) if primary else None
        secrets = EnvSecrets(ref, os.environ.get(url_env), namespace)
        return PlanView(
            namespace, name, reconciler.plan(body, namespace, secrets=secrets, owned=False)
        )
    live = kube.get(LOKIFI_STORAGES, namespace, name) if name else None
    if live is not None:
        body = {
            **body,
            "metadata": {
                **meta,
                "uid": live["metadata"]["uid"],
                "creationTimestamp": live["metadata"].get("creationTimestamp"),
            },
            "status": live.get("status") or {},
        }
    owner = Owner(
        namespace=namespace, name=name, uid=str((body.get("metadata") or {}).get("uid") or "")
    )
    config = ReconcilerConfig(job_settings=JobSettings(image=_job_image(kube, owner, job_image)))
    reconciler = ResourceReconciler(kube, config, clock=clock)
    return PlanView(namespace, name, reconciler.plan(body, namespace))


class _NoKube:
    """Stands in for the API client when there is none: any use is a planning gap, not a
    crash (the owned objects are skipped before it is reached)."""

    def __getattr__(self, name: str) -> Any:
        raise ClientError("no Kubernetes API (set KUBECONFIG)")


def connect(kubeconfig: str | None) -> KubeClient:
    """The Kubernetes API of the kubeconfig (in a pod: the pod's service account)."""
    try:
        return KubeClient.from_environment(kubeconfig or os.environ.get("KUBECONFIG") or None)
    except Exception as error:  # a broken kubeconfig: say so rather than plan half
        raise _fail(f"cannot load the kubeconfig: {type(error).__name__}") from None


def run_plan(view: PlanView, output: Output, color: ColorMode) -> int:
    """Print the plan; the exit code (0 no change, 2 changes, 1 incomplete)."""
    if output == Output.JSON:
        typer.echo(json.dumps(plan_json(view), indent=2))
    else:
        paint = Painter.for_stream(color)
        typer.echo(plan_text(view, paint), nl=False, color=paint.enabled)
    if not view.complete:
        return 1
    return EXIT_CHANGES if view.plan.changes else 0


def plan(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="LokifiStorage manifest (or its spec).")
    ],
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Namespace (default: the manifest's, else default)."
        ),
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json.")] = Output.TEXT,
    as_json: Annotated[bool, typer.Option("--json", hidden=True)] = False,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this managed table (repeatable).")
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig (default $KUBECONFIG, ~/.kube/config).")
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            help="No Kubernetes API: plan the partitions only, with the primary's URL from "
            "$LOKIFI_PRIMARY_URL (or --url-env)."
        ),
    ] = False,
    url_env: Annotated[
        str, typer.Option(help="With --offline: the variable holding the primary's URL.")
    ] = PRIMARY_URL_ENV,
    job_image: Annotated[
        str | None,
        typer.Option(
            envvar=JOB_IMAGE_ENV, help="The operator's job image (default: its CronJobs' image)."
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="Plan as if it were this ISO 8601 instant (default: now).")
    ] = None,
    color: Annotated[ColorMode, typer.Option(help="auto, always or never.")] = ColorMode.AUTO,
) -> None:
    """Print what a reconcile would change now on every part, without changing anything.

    Partition actions, Redis CONFIG SET per node (old -> new), the S3 lifecycle diff per
    bucket, the CronJobs and the connection Secret (fields and keys, never values), then a
    summary line. Exit code 0: nothing would change; 2: something would; 1: error.
    """
    body = read_manifest(file)
    ns = namespace or str((body.get("metadata") or {}).get("namespace") or "default")
    if table:
        body = _only_tables(body, table)
    moment = _now(now)
    if offline and not os.environ.get(url_env):
        raise _fail(f"--offline needs the primary's URL in ${url_env} (postgresql://...)")
    kube = None if offline else connect(kubeconfig)
    try:
        view = plan_body(body, ns, kube, now=moment, url_env=url_env, job_image=job_image)
    except ValidationError as error:
        raise _fail(f"invalid spec: {format_validation_error(error)}") from None
    except ClientError as error:
        raise _fail(error.message) from None
    finally:
        if kube is not None:
            kube.close()
    if kube is None:
        typer.echo(f"note: --offline: planned only what ${url_env} reaches", err=True)
    raise typer.Exit(run_plan(view, Output.JSON if as_json else output, color))


def _only_tables(body: dict[str, Any], only: list[str]) -> dict[str, Any]:
    spec = dict(body.get("spec") or {})
    postgres = dict(spec.get("postgres") or {})
    tables = [t for t in postgres.get("tables") or [] if t.get("name") in only]
    unknown = set(only) - {t.get("name") for t in tables}
    if unknown:
        raise _fail(f"not in the spec: {', '.join(sorted(unknown))}")
    postgres["tables"] = tables
    spec["postgres"] = postgres
    return {**body, "spec": spec}


def _now(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--now {text!r} is not an ISO 8601 instant") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
