"""What a reconcile is given and what it gives back: the operator-wide settings, one pass's
result, and a plan (a pass with apply off).

Apart from reconcile/resource.py because the runtime (queue, scheduler, finalizers) and the
admin commands speak in these, not in the reconciler's workings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.builders.cronjobs import JobSettings
from lokifi_storage.domain.change_plan import Change, plan_summary
from lokifi_storage.domain.events import EventSpec
from lokifi_storage.domain.requeue import Outcome
from lokifi_storage.reconcile.fence import Fence
from lokifi_storage.reconcile.report import PartReport

__all__ = ["ReconcileResult", "ReconcilerConfig", "ResourcePlan"]


@dataclass(frozen=True)
class ReconcilerConfig:
    """Operator-wide settings of every reconcile."""

    job_settings: JobSettings = field(default_factory=JobSettings)
    instance: str = "local"
    part_timeout_seconds: float = 120.0
    # Lost with the Lease (runtime/startup.py): parts stop and nothing more is written.
    fence: Fence = field(default_factory=Fence)


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile found and did."""

    outcome: Outcome
    ready_message: str = ""
    status_patched: bool = False
    actions: tuple[str, ...] = ()
    events: tuple[EventSpec, ...] = ()
    gone: bool = False
    # metadata.resourceVersion of the resource as this pass left it: the one it read, or the
    # one its status patch returned (None: unknown). A watch event of exactly this version
    # is the resource as it is now, unless a newer event is on its way (`reconcile`'s `known`).
    resource_version: str | None = None


@dataclass(frozen=True)
class ResourcePlan:
    """What a pass with apply off found: each part's report, and every change it would make."""

    reports: tuple[PartReport, ...]
    changes: tuple[Change, ...]

    @property
    def summary(self) -> str:
        return plan_summary(self.changes)
