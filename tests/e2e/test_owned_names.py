"""An owned object's name held by another object: never adopted, never changed.

The operator names its CronJobs after the resource (`lokifi-prod-vacuum`, ...) and its connection
Secret after the spec. A CronJob made by hand under such a name is left exactly as it was
(a forced server-side apply used to rewrite its schedule, merge the operator's container into
its pod template and add an ownerReference that would let the garbage collector delete it with
the resource), and BackupsReady says CronJobConflict with the fix. An object that still belongs
to a deleted LokifiStorage of the same name (applied again before the garbage collector ran) is
waited for, retried with backoff, not stalled on; the garbage collector's delete is held here by
a finalizer of the test's, which stands in for a slow collector.
"""

from __future__ import annotations

import json
import time
import uuid

from e2e_full import FullExample
from e2e_operator import OperatorFactory, conditions, get_json, kubectl, wait_for

from lokifi_storage.api import conditions as types
from lokifi_storage.api.conditions import Reason
from lokifi_storage.api.coordinates import API_VERSION, KIND

HOLD = "test.lokifi.ai/hold"


def _reason(full_example: FullExample, kind: str, reason: str) -> dict[str, str] | None:
    cond = conditions(full_example.get()).get(kind)
    return cond if cond and cond.get("reason") == reason else None


def test_a_cronjob_made_by_hand_under_the_name_is_never_adopted(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    kubectl(
        stack, "-n", ns, "create", "cronjob", "lokifi-prod-vacuum", "--image=busybox",
        "--schedule=1 1 1 1 *", "--", "echo", "kept",
    )  # fmt: skip
    before = get_json(stack, ns, "cronjob", "lokifi-prod-vacuum")
    assert before is not None
    full_example.apply()
    start_operator(ns, resync_seconds=2)

    cond = wait_for(
        lambda: _reason(full_example, types.BACKUPS_READY, Reason.CRONJOB_CONFLICT),
        90,
        "BackupsReady=False/CronJobConflict",
    )
    assert cond["status"] == "False"
    assert "'lokifi-prod-vacuum'" in cond["message"]
    assert "no controlling owner" in cond["message"]
    assert conditions(full_example.get())[types.STALLED]["status"] == "True"
    time.sleep(5)  # more resyncs (every 2 s): still untouched
    after = get_json(stack, ns, "cronjob", "lokifi-prod-vacuum")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in after["metadata"]
    assert after["spec"] == before["spec"]
    # The CronJobs whose names are free were made.
    assert get_json(stack, ns, "cronjob", "lokifi-prod-backup-daily") is not None

    # The fix the message names: the leftover goes, the operator makes its own.
    kubectl(stack, "-n", ns, "delete", "cronjob", "lokifi-prod-vacuum")
    full_example.wait_ready()
    made = get_json(stack, ns, "cronjob", "lokifi-prod-vacuum")
    assert made is not None
    assert made["metadata"]["ownerReferences"][0]["uid"] == (full_example.get() or {}).get(
        "metadata", {}
    ).get("uid")


def test_objects_of_a_deleted_resource_of_the_same_name_are_waited_for(
    full_example: FullExample, start_operator: OperatorFactory
) -> None:
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets()
    old_uid = str(uuid.uuid4())
    owner = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": "lokifi-prod",
        "uid": old_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    leftover = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "lokifi-db-conn",
            "namespace": ns,
            "ownerReferences": [owner],
            "finalizers": [HOLD],
        },
        "stringData": {"DATABASE_URL": "postgresql://old@nowhere/app"},
    }
    kubectl(stack, "create", "-f", "-", input_text=json.dumps(leftover))
    full_example.apply()
    start_operator(ns, resync_seconds=60)  # the retry is the backoff's, not a resync's

    cond = wait_for(
        lambda: _reason(full_example, types.POSTGRES_READY, Reason.GARBAGE_COLLECTION_PENDING),
        90,
        "PostgresReady=False/GarbageCollectionPending",
    )
    assert old_uid in cond["message"]
    assert conditions(full_example.get())[types.STALLED]["status"] == "False"
    held = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert held is not None
    assert held["metadata"]["ownerReferences"][0]["uid"] == old_uid  # not taken over

    # The garbage collector's delete goes through: the operator makes its own within seconds.
    patch = json.dumps({"metadata": {"finalizers": None}})
    kubectl(stack, "-n", ns, "patch", "secret", "lokifi-db-conn", "--type=merge", "-p", patch)
    released = time.monotonic()
    full_example.wait_ready("50s")
    assert time.monotonic() - released < 50  # well before the 60 s resync
    made = get_json(stack, ns, "secret", "lokifi-db-conn")
    assert made is not None
    new_uid = (full_example.get() or {}).get("metadata", {}).get("uid")
    assert made["metadata"]["ownerReferences"][0]["uid"] == new_uid
