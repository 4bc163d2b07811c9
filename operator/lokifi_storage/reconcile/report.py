"""What every part's reconciler hands back to the handlers: one shape for all parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from lokifi_storage.api.status import Condition, LokifiStorageStatus
from lokifi_storage.domain.change_plan import Change


@dataclass(frozen=True)
class PartReport:
    """The outcome of one part's observe -> plan -> apply.

    `condition` is the part's own condition (type, status, reason, message; the handler adds
    observedGeneration and lastTransitionTime). `status` sets the blocks of `.status` this part
    owns and observed (e.g. `partitions`); a block left unset keeps what was last reported, so
    a part that could not observe does not wipe it. `actions` are short human sentences of what
    was changed, one Event each; empty when nothing was written. `secret_data` is this part's
    contribution to the connection Secret. `planned` are the writes a pass with apply off found
    to do and did not do (`lokifi-storage plan`, spec.dryRun); empty when applying.
    """

    condition: Condition
    status: LokifiStorageStatus = field(default_factory=LokifiStorageStatus)
    actions: list[str] = field(default_factory=list)
    secret_data: dict[str, str] = field(default_factory=dict)
    planned: list[Change] = field(default_factory=list)
