"""A CronJob's container as the kubelet would start it, for tests that run its command on the
stack instead of in a cluster with nodes: the container, and its environment with each
secretKeyRef resolved from the Secret values the test created."""

from __future__ import annotations

from typing import Any


def job_container(cronjob: dict[str, Any]) -> dict[str, Any]:
    """The (one) container of the CronJob's pod template."""
    container: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def container_env(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment: literal values as written, secretKeyRef entries from
    `secrets` by (Secret name, key)."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
    return env
