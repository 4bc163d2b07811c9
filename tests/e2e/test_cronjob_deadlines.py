"""Every CronJob the operator writes ends a hung run: the API server stores an
activeDeadlineSeconds on each Job template, so a stuck pg_dump or export cannot hold its locks,
and block every later run of its schedule, for ever."""

from __future__ import annotations

from e2e_full import FullExample

from lokifi_storage.api.spec import LokifiStorageSpec
from lokifi_storage.builders.cronjobs import JobSettings
from lokifi_storage.builders.labels import Owner
from lokifi_storage.clients.kube import CRONJOBS, KubeClient
from lokifi_storage.reconcile.owned_cronjobs import owned_selector, sync_cronjobs


def test_every_cronjob_written_has_an_active_deadline(full_example: FullExample) -> None:
    """Path 10: backup (three schedules), vacuum, partitions compress and export."""
    full_example.apply()
    obj = full_example.get()
    assert obj is not None
    owner = Owner(full_example.namespace, full_example.name, obj["metadata"]["uid"])
    spec = LokifiStorageSpec.model_validate(obj["spec"])
    kube = KubeClient.from_environment(full_example.stack.kubeconfig)
    try:
        actions = sync_cronjobs(kube, owner, spec, JobSettings())
        stored = kube.list_owned(CRONJOBS, owner.namespace, owner.uid, owned_selector(owner))
    finally:
        kube.close()
    assert len(actions) == len(stored) == 6, actions
    deadlines = {
        job["metadata"]["name"]: job["spec"]["jobTemplate"]["spec"].get("activeDeadlineSeconds")
        for job in stored
    }
    assert all(isinstance(d, int) and 0 < d <= 24 * 3600 for d in deadlines.values()), deadlines
