"""spec.dryRun: the operator observes and plans every part, reports the plan in status.plan,
conditions and Events, and writes nothing else until the dry-run is lifted.

The seed's resource is reconciled for real first. Then a change to every part is applied with
dryRun: true (a Redis setting, two more months premade, the lifecycle rule, the daily backup's
schedule, the connection Secret's name). While it is set, the operator goes through a counting
proxy (as in the no-op test): it may patch the resource's status and post Events, nothing else;
and once the plan is reported, resyncs do not post it again. PostgreSQL counts every DDL command
with an event trigger; Redis, the bucket, the CronJobs and the Secrets are compared with what
they were. Lifting the dry-run applies exactly the plan.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from e2e_full import FullExample, partitions
from e2e_operator import OperatorFactory, conditions, events, get_json, kubectl, wait_for
from e2e_proxy import counting_proxy
from e2e_seed import EXTRA, SETTING, VALUE, apply_seed, restored_setting, setting_on_nodes

from stackfixtures import REDIS_CLAIMS_KEY

RESYNC = 2.0
CHANGED = {
    "redis_extra": EXTRA,
    "premake": 5,
    "abort_days": 9,
    "daily_schedule": "30 1 * * *",
    "conn_secret": "lokifi-db-conn-v2",
}

DDL_COUNTER = """
CREATE TABLE public.ddl_seen (tag text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION public.count_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.ddl_seen (tag) VALUES (tg_tag); END $$;
CREATE EVENT TRIGGER count_ddl ON ddl_command_start EXECUTE FUNCTION public.count_ddl();
"""


def _ddl_count(full_example: FullExample) -> int:
    with psycopg.connect(full_example.database.primary_url) as conn:
        row = conn.execute("SELECT count(*) FROM public.ddl_seen").fetchone()
    assert row is not None
    return int(row[0])


def _world(full_example: FullExample) -> dict[str, Any]:
    """What the operator could write outside the API server, as it is now."""
    s3 = full_example.stack.s3_client()
    media = full_example.buckets["media"]
    cluster = full_example.stack.redis_cluster()
    try:
        claims = {
            setting: text
            for setting, text in cluster.hgetall(REDIS_CLAIMS_KEY).items()
            if full_example.namespace in str(text)
        }
    finally:
        cluster.close()
    return {
        "ddl": _ddl_count(full_example),  # DDL and COMMENT ON (the tables' claims)
        "partitions": partitions(full_example, "ai_messages"),
        SETTING: setting_on_nodes(full_example.stack),
        "redis claims": claims,
        "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=media)["Rules"],
        "bucket tags": s3.get_bucket_tagging(Bucket=media)["TagSet"],  # lifecycle rule claims
    }


def _owned(full_example: FullExample) -> dict[str, str]:
    """name -> resourceVersion of the namespace's CronJobs and Secrets."""
    stack, ns = full_example.stack, full_example.namespace
    out = {}
    for kind in ("cronjobs", "secrets"):
        listed = json.loads(kubectl(stack, "-n", ns, "get", kind, "-o", "json"))
        for item in listed["items"]:
            out[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def test_dry_run_reports_the_plan_writes_nothing_and_lifting_it_applies_the_plan(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    with restored_setting(full_example.stack):
        _dry_run_then_lift(full_example, start_operator)


def _dry_run_then_lift(full_example: FullExample, start_operator: OperatorFactory) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    with psycopg.connect(full_example.database.primary_url, autocommit=True) as conn:
        conn.execute(DDL_COUNTER)
    apply_seed(full_example)
    assert stack.kubeconfig is not None
    with counting_proxy(stack.kubeconfig) as proxy:
        operator = start_operator(ns, resync_seconds=RESYNC, kubeconfig=proxy.kubeconfig)
        full_example.wait_ready("180s")
        assert _ddl_count(full_example) > 0, "the event trigger counts the operator's DDL"
        time.sleep(2 * RESYNC)
        before, owned_before = _world(full_example), _owned(full_example)

        start = time.monotonic()
        apply_seed(full_example, dry_run="true", **CHANGED)
        generation = get_json(stack, ns, "lks", "lokifi-prod")["metadata"]["generation"]  # type: ignore[index]

        def planned() -> dict[str, Any] | None:
            body = get_json(stack, ns, "lks", "lokifi-prod") or {}
            plan = (body.get("status") or {}).get("plan") or {}
            return body if plan.get("observedGeneration") == generation else None

        body = wait_for(planned, 120, "status.plan for the new generation")
        reported = time.monotonic()
        done = operator.log().count("reconciled ")
        wait_for(lambda: operator.log().count("reconciled ") >= done + 3, 60, "three resyncs")
        writes = proxy.writes(since=start)
        steady = proxy.writes(since=reported + 1)
        after, owned_after = _world(full_example), _owned(full_example)

        # Only the resource's status (and Kopf's note on it) and Events were written.
        assert [
            w for w in writes if "/lokifistorages/" not in w.path and "/events" not in w.path
        ] == []
        # Once reported, the plan is not re-sent: resyncs may only refresh status (replica lag
        # and Redis memory move by themselves on the full example), never post it again;
        # unless the plan itself changed (another test session's operator setting a setting of
        # the shared Redis Cluster changes the old values the plan shows).
        resent = [w for w in steady if not (w.method == "PATCH" and w.path.endswith("/status"))]
        still = (get_json(stack, ns, "lks", "lokifi-prod") or {}).get("status", {}).get("plan")
        if still == body["status"]["plan"]:
            assert resent == [], [
                (e["reason"], e["message"]) for e in events(stack, ns, "lokifi-prod")[-10:]
            ]
        assert after == before
        assert owned_after == owned_before

        plan = body["status"]["plan"]
        parts = {item["part"] for item in plan["items"]}
        assert parts == {"partitions", "redis", "objectStorage", "connectionSecret", "cronJobs"}
        assert plan["summary"].startswith("Plan: ")
        secret_changes = {
            (i["kind"], i["target"]) for i in plan["items"] if i["part"] == "connectionSecret"
        }
        assert secret_changes == {("create", "lokifi-db-conn-v2"), ("delete", "lokifi-db-conn")}
        (daily,) = [i for i in plan["items"] if i["target"] == "lokifi-prod-backup-daily"]
        assert {"name": "spec.schedule", "old": "0 2 * * *", "new": "30 1 * * *"} in daily["fields"]
        ready = conditions(body)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "DryRun")
        assert conditions(body)["Stalled"]["status"] == "False"
        said = [e["message"] for e in events(stack, ns, "lokifi-prod") if e["reason"] == "Planned"]
        assert any(m.startswith(f"would CONFIG SET {SETTING} ") for m in said), said
        described = kubectl(stack, "-n", ns, "describe", "lks", "lokifi-prod")
        assert "DryRun" in described
        assert full_example.database.primary_url not in described

        # Lift the dry-run: the plan is carried out.
        apply_seed(full_example, **CHANGED)

        def applied() -> dict[str, Any] | None:
            now = get_json(stack, ns, "lks", "lokifi-prod") or {}
            ok = conditions(now).get("Ready", {}).get("status") == "True"
            return now if ok and "plan" not in (now.get("status") or {}) else None

        wait_for(applied, 180, "Ready once the dry-run is lifted")
        operator.stop()
    lifted = _world(full_example)
    assert lifted["ddl"] > before["ddl"]
    assert len(lifted["partitions"]) == len(before["partitions"]) + 2
    assert set(lifted[SETTING].values()) == {VALUE}
    assert SETTING in lifted["redis claims"], "claimed once applied, not while in dry-run"
    assert lifted["lifecycle"][0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 9}
    daily_job = get_json(stack, ns, "cronjob", "lokifi-prod-backup-daily")
    assert daily_job is not None
    assert daily_job["spec"]["schedule"] == "30 1 * * *"
    assert get_json(stack, ns, "secret", "lokifi-db-conn-v2") is not None
    assert get_json(stack, ns, "secret", "lokifi-db-conn") is None
