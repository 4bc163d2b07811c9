"""Argo CD's view of a LokifiStorage: deploy/argocd/health.lua, run in Argo CD's own Lua virtual
machine (gopher-lua, tools/gitops) on the objects the operator really wrote, at each moment of a
resource's life.

One resource goes through every state an admin meets: applied before any operator ran, a
missing Secret, Ready, an unreachable endpoint the operator keeps retrying, a spec change the
operator has not seen yet (generation ahead), and a spec the models refuse. Each object is read
with `kubectl get -o json`, turned into a Lua table and handed to the script as Argo CD does,
and also given to sigs.k8s.io/cli-utils' kstatus (tools/gitops), which Flux and kpt use.
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
    wait_for,
)
from gitops import HEALTH_LUA, REPO, Health, argocd_health, kstatus

from lokifi_storage.api import conditions as types
from lokifi_storage.api.coordinates import GROUP, KIND

ARGOCD_README = REPO / "deploy" / "argocd" / "README.md"


def health_of(full_example: FullExample) -> tuple[dict[str, Any], Health]:
    obj = full_example.get()
    assert obj is not None
    return obj, argocd_health(obj)


def test_health_follows_the_operator_through_a_resource_lifecycle(
    full_example: FullExample,
    start_operator: OperatorFactory,
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
    assert kstatus(obj).status == "Current"

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
    assert kstatus(obj) == Health("Failed", stalled["message"])

    # (c) Ready once the Secret exists.
    create_secret(stack, ns, "lokifi-db", url=full_example.database.primary_url)
    full_example.wait_ready()
    obj, health = health_of(full_example)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert health == Health("Healthy", f"Reconciled: {conditions(obj)[types.READY]['message']}")
    assert kstatus(obj).status == "Current"

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
    assert kstatus(obj) == Health("InProgress", conds[types.RECONCILING]["message"])

    # (a') A spec change the operator has not observed: generation ahead of the status.
    operator.stop()
    full_example.apply(s3_endpoint=stack.s3_endpoint, daily_schedule="99 2 * * *")
    obj, health = health_of(full_example)
    assert obj["metadata"]["generation"] == 3
    assert obj["status"]["observedGeneration"] == 2
    assert health == Health("Progressing", "waiting for the operator to observe generation 3")
    assert kstatus(obj).status == "InProgress"

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
    assert kstatus(obj) == Health("Failed", conditions(obj)[types.STALLED]["message"])


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


def test_the_virtual_machine_is_argocds_lua_5_1_without_the_string_library(
    tmp_path: Path,
) -> None:
    """What a stock Lua would accept and Argo CD would not fails here too, so the check means it."""
    obj = {"metadata": {"generation": 3}, "spec": {"list": [10, 20]}}
    probe = tmp_path / "probe.lua"
    probe.write_text(
        'return {status = "Healthy", message = _VERSION .. " " .. type(string) .. " "'
        ' .. obj.metadata.generation .. " " .. obj.spec.list[2] .. " " .. #obj.spec.list}'
    )
    assert argocd_health(obj, probe) == Health("Healthy", "Lua 5.1 nil 3 20 2")

    formatted = tmp_path / "formatted.lua"
    formatted.write_text('return {status = string.format("%s", "Healthy")}')
    with pytest.raises(AssertionError, match="string"):
        argocd_health(obj, formatted)

    invalid = tmp_path / "invalid.lua"
    invalid.write_text('return {status = "Fine"}')
    assert argocd_health(obj, invalid) == Health("Unknown", "Lua returned an invalid health status")


def test_readme_configures_argocd_with_the_shipped_script() -> None:
    """The argocd-cm snippet in the README is the script itself, under the right key."""
    text = ARGOCD_README.read_text()
    key = f"resource.customizations.health.{GROUP}_{KIND}"
    block = re.search(rf"^  {re.escape(key)}: \|\n((?:    .*\n|\n)+)", text, re.MULTILINE)
    assert block is not None, f"no `{key}: |` block in {ARGOCD_README}"
    embedded = "\n".join(line[4:] for line in block.group(1).splitlines()).strip()
    assert embedded == HEALTH_LUA.read_text().strip()
