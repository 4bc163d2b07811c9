"""Argo CD's view of a LokifiStorage: deploy/argocd/health.lua, run by Debian's lua5.4 on the
objects the operator really wrote, at each moment of a resource's life.

One resource goes through every state an admin meets: applied before any operator ran, a
missing Secret, Ready, an unreachable endpoint the operator keeps retrying, a spec change the
operator has not seen yet (generation ahead), and a spec the models refuse. Each object is read
with `kubectl get -o json`, turned into a Lua table and handed to the script as Argo CD does,
and also given to sigs.k8s.io/cli-utils' kstatus (tools/kstatus), which Flux and kpt use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e_full import FullExample
from e2e_operator import (
    OperatorFactory,
    conditions,
    create_secret,
    free_port,
    kubectl,
    wait_for,
)
from gitops import (
    HEALTH_LUA,
    REPO,
    Health,
    argocd_health,
    kstatus,
    kstatus_binary,
    lua_literal,
    round_trip,
)

from lokifi_storage.api import conditions as types
from lokifi_storage.builders.names import API_GROUP, KIND

ARGOCD_README = REPO / "deploy" / "argocd" / "README.md"


@pytest.fixture(scope="module")
def kstatus_checker() -> Path:
    return kstatus_binary()


def health_of(full_example: FullExample) -> tuple[dict[str, Any], Health]:
    obj = full_example.get()
    assert obj is not None
    return obj, argocd_health(obj)


def test_health_follows_the_operator_through_a_resource_lifecycle(
    full_example: FullExample, start_operator: OperatorFactory, kstatus_checker: Path
) -> None:
    """Argo CD's health and kstatus' verdict (cli-utils, as Flux and kpt compute it) agree."""
    stack, ns = full_example.stack, full_example.namespace
    full_example.create_secrets(skip=["lokifi-db"])
    full_example.apply()

    # (a) Applied, no operator yet: no status at all.
    obj, health = health_of(full_example)
    assert "status" not in obj
    assert health.status == "Progressing", health
    assert "waiting for the operator" in health.message
    # kstatus cannot tell "no controller acted yet" from "nothing to report" and calls an object
    # without status.observedGeneration Current; Argo CD waits, thanks to the script.
    assert kstatus(kstatus_checker, obj).status == "Current"

    # (b) The primary's Secret is missing: Stalled, and the message names the Secret.
    operator = start_operator(ns)
    wait_for(
        lambda: conditions(full_example.get()).get(types.STALLED, {}).get("status") == "True",
        90,
        "Stalled for the missing Secret",
    )
    obj, health = health_of(full_example)
    assert conditions(obj)[types.READY]["status"] == "False"
    stalled = conditions(obj)[types.STALLED]
    assert health == Health("Degraded", f"{stalled['reason']}: {stalled['message']}")
    assert "'lokifi-db'" in health.message
    assert kstatus(kstatus_checker, obj) == Health("Failed", stalled["message"])

    # (c) Ready once the Secret exists.
    create_secret(stack, ns, "lokifi-db", url=full_example.database.primary_url)
    kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", "lks/lokifi-prod", "--timeout=120s")
    obj, health = health_of(full_example)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert health == Health("Healthy", f"Reconciled: {conditions(obj)[types.READY]['message']}")
    assert kstatus(kstatus_checker, obj).status == "Current"

    # (e) The object storage endpoint stops answering: the operator retries (Reconciling).
    closed = f"http://127.0.0.1:{free_port()}"
    full_example.apply(s3_endpoint=closed)
    wait_for(
        lambda: (
            (c := conditions(full_example.get())).get(types.RECONCILING, {}).get("status") == "True"
            and c[types.READY]["observedGeneration"] == 2
        ),
        90,
        "Reconciling while the endpoint is closed",
    )
    obj, health = health_of(full_example)
    conds = conditions(obj)
    assert (conds[types.READY]["status"], conds[types.STALLED]["status"]) == ("False", "False")
    assert health.status == "Progressing", health
    assert (
        health.message
        == f"{conds[types.RECONCILING]['reason']}: {conds[types.RECONCILING]['message']}"
    )
    assert kstatus(kstatus_checker, obj) == Health(
        "InProgress", conds[types.RECONCILING]["message"]
    )

    # (a') A spec change the operator has not observed: generation ahead of the status.
    operator.stop()
    full_example.apply(s3_endpoint=stack.s3_endpoint, daily_schedule="99 2 * * *")
    obj, health = health_of(full_example)
    assert obj["metadata"]["generation"] == 3
    assert obj["status"]["observedGeneration"] == 2
    assert health == Health("Progressing", "waiting for the operator to observe generation 3")
    assert kstatus(kstatus_checker, obj).status == "InProgress"

    # (d) The spec passed admission but the models refuse it: Stalled/InvalidSpec.
    start_operator(ns)
    wait_for(
        lambda: (
            conditions(full_example.get()).get(types.STALLED, {}).get("reason") == "InvalidSpec"
        ),
        60,
        "Stalled/InvalidSpec",
    )
    obj, health = health_of(full_example)
    assert obj["status"]["observedGeneration"] == 3
    assert health.status == "Degraded", health
    assert health.message.startswith("InvalidSpec: ")
    assert "spec.backups.schedules.0.schedule" in health.message
    assert kstatus(kstatus_checker, obj) == Health(
        "Failed", conditions(obj)[types.STALLED]["message"]
    )


@pytest.mark.parametrize(
    ("conds", "expected"),
    [
        ([], "Progressing"),
        ([{"type": "Ready", "status": "Unknown"}], "Progressing"),
        ([{"type": "Ready", "status": "False", "reason": "X", "message": "m"}], "Degraded"),
        (
            [
                {"type": "Ready", "status": "True", "reason": "Reconciled"},
                {"type": "Stalled", "status": "True", "reason": "X"},
            ],
            "Degraded",
        ),
    ],
)
def test_states_the_operator_never_writes_still_get_a_health(
    conds: list[dict[str, str]], expected: str
) -> None:
    obj = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": conds}}
    assert argocd_health(obj).status == expected


def test_a_status_without_observed_generation_is_progressing() -> None:
    obj = {
        "metadata": {"generation": 1},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert argocd_health(obj) == Health(
        "Progressing", "waiting for the operator to observe generation 1"
    )


def test_lua_tables_hold_exactly_what_the_json_held() -> None:
    value: dict[str, Any] = {
        'quote"back\\slash': "tab\tnl\nnul\x00" + "9 after a control byte\x01" + "9",
        "unicode": "é ✓ \U0001f600 \x7f",
        "list": [1, -2, 0.1, 1e-300, True, False, "s", {"nested": [{"deep": "x"}]}],
        "dropped": None,
        "big": 2**63 - 1,
        "empty": {},
    }
    expected = {k: v for k, v in value.items() if v is not None}
    assert round_trip(value) == expected
    with pytest.raises(ValueError, match="does not fit"):
        lua_literal(2**63)


def test_readme_configures_argocd_with_the_shipped_script() -> None:
    """The argocd-cm snippet in the README is the script itself, under the right key."""
    text = ARGOCD_README.read_text()
    key = f"resource.customizations.health.{API_GROUP}_{KIND}"
    block = re.search(rf"^  {re.escape(key)}: \|\n((?:    .*\n|\n)+)", text, re.MULTILINE)
    assert block is not None, f"no `{key}: |` block in {ARGOCD_README}"
    embedded = "\n".join(line[4:] for line in block.group(1).splitlines()).strip()
    assert embedded == HEALTH_LUA.read_text().strip()
