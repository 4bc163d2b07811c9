"""The operator's wiring that needs no server: Kopf settings, and how parts are isolated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import kopf

from lokifi_storage.api import conditions as types
from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.api.status import ready
from lokifi_storage.clients.errors import ConnectionFailed
from lokifi_storage.handlers.operator import (
    FINALIZER,
    RememberedDiffBase,
    build_registry,
    operator_settings,
)
from lokifi_storage.reconcile.parts import PartContext, clean_up_parts, run_part
from lokifi_storage.reconcile.report import PartReport
from lokifi_storage.reconcile.secrets import MissingSecretError

SPEC = LokifiStorageSpec.model_validate(
    {"postgres": {"primary": {"secretRef": {"name": "db", "key": "url"}}}}
)


def test_kopf_posts_no_events_and_keeps_its_bookkeeping_out_of_status() -> None:
    settings = operator_settings()
    assert settings.posting.enabled is False
    assert settings.posting.loggers is False
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.finalizer == FINALIZER
    assert settings.peering.standalone is True


def test_kopf_keeps_the_last_handled_spec_in_memory_and_a_first_try_patches_nothing() -> None:
    """Kopf's bookkeeping of a change handled at the first try leaves its patch empty: the
    last-handled essence stays in memory (by uid) and no `kopf-managed` marker is added, so
    the resource itself gets no PATCH from Kopf (only its status, from the reconciler)."""
    settings = operator_settings()
    diffbase = settings.persistence.diffbase_storage
    progress = settings.persistence.progress_storage
    body = kopf.Body(
        {
            "apiVersion": "storage.lokifi.ai/v1alpha1",
            "kind": "LokifiStorage",
            "metadata": {"uid": "u-1", "name": "lks", "namespace": "ns", "annotations": {}},
            "spec": {"postgres": {"primary": {"secretRef": {"name": "db", "key": "url"}}}},
        }
    )
    other = kopf.Body({**body, "metadata": {**body["metadata"], "uid": "u-2"}})
    patch = kopf.Patch()
    essence = diffbase.build(body=body)
    assert diffbase.fetch(body=body) is None  # never handled here: Kopf's create handler runs
    diffbase.store(body=body, patch=patch, essence=essence)
    progress.store(key="reconcile", record={"success": True}, body=body, patch=patch)
    progress.purge(key="reconcile", body=body, patch=patch)
    assert not patch, dict(patch)
    assert diffbase.fetch(body=body) == essence
    assert diffbase.fetch(body=other) is None
    assert isinstance(diffbase, RememberedDiffBase)
    diffbase.forget("u-1")
    assert diffbase.fetch(body=body) is None


def test_kopf_watches_namespaces_only_when_a_glob_needs_resolving() -> None:
    assert operator_settings().scanning.disabled is True
    assert operator_settings(namespaces=["lokifi", "lokifi-staging"]).scanning.disabled is True
    assert operator_settings(namespaces=["lokifi", "team-*"]).scanning.disabled is False
    assert operator_settings(namespaces=["!kube-system"]).scanning.disabled is False


def test_no_timer_or_daemon_is_registered_so_retain_needs_no_finalizer() -> None:
    registry = build_registry()
    assert not registry._spawning.get_all_handlers()


def context() -> PartContext:
    return PartContext(
        spec=SPEC,
        namespace="ns",
        name="lks",
        uid="u",
        secrets=None,  # type: ignore[arg-type] - the runs below never read a Secret
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


@dataclass(frozen=True)
class FakePart:
    """A part whose run is given: what run_part does around it is under test."""

    run_with: Callable[[PartContext], list[PartReport]]
    conditions: tuple[str, ...] = (types.POSTGRES_READY,)
    name: str = "test"
    status_keys: tuple[str, ...] = ()

    def declared(self, spec: LokifiStorageSpec) -> bool:
        return True

    def run(self, ctx: PartContext) -> list[PartReport]:
        return self.run_with(ctx)

    def cleanup(self, ctx: PartContext) -> list[str]:
        return []

    def release(self, ctx: PartContext) -> list[str]:
        return []


def test_a_missing_secret_becomes_the_parts_conditions_naming_it() -> None:
    def run(ctx: PartContext) -> list[PartReport]:
        raise MissingSecretError("SecretNotFound", "Secret 'db' not found in namespace 'ns'")

    reports = run_part(FakePart(run, (types.POSTGRES_READY, types.REPLICAS_READY)), context())
    assert [r.condition.type for r in reports] == [types.POSTGRES_READY, types.REPLICAS_READY]
    assert {(r.condition.status, r.condition.reason) for r in reports} == {
        ("False", "SecretNotFound")
    }
    assert "'db'" in reports[0].condition.message


def test_a_client_error_keeps_its_reason_and_message() -> None:
    def run(ctx: PartContext) -> list[PartReport]:
        raise ConnectionFailed("primary db:5432 not answering")

    (report,) = run_part(FakePart(run), context())
    assert (report.condition.reason, report.condition.message) == (
        "ConnectionFailed",
        "primary db:5432 not answering",
    )


def test_an_unexpected_exception_never_puts_its_text_in_the_condition() -> None:
    def run(ctx: PartContext) -> list[PartReport]:
        raise RuntimeError("could not connect to postgresql://app:hunter2@db/app")

    (report,) = run_part(FakePart(run), context())
    assert report.condition.reason == "PartFailed"
    assert "RuntimeError" in report.condition.message
    assert "hunter2" not in report.condition.message


def test_a_successful_part_returns_its_reports_unchanged() -> None:
    report = PartReport(condition=ready(types.POSTGRES_READY, "fine"))
    assert run_part(FakePart(lambda ctx: [report]), context()) == [report]


def test_one_cleanup_failing_does_not_skip_the_next_parts_cleanup() -> None:
    class Failing(FakePart):
        def cleanup(self, ctx: PartContext) -> list[str]:
            raise ConnectionFailed("primary db:5432 not answering")

    class Cleaning(FakePart):
        def cleanup(self, ctx: PartContext) -> list[str]:
            return ["dropped archive.t"]

    parts = [Failing(lambda ctx: [], name="first"), Cleaning(lambda ctx: [], name="second")]
    done, failures = clean_up_parts(parts, context())
    assert done == ["dropped archive.t"]
    assert failures == ["first: primary db:5432 not answering"]
