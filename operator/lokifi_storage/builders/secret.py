"""The connection Secret object application pods read (`envFrom: secretRef`).

Only the object's shape lives here; its data comes from the parts' builders
(domain/connection_secret.py) and is merged by the reconciler. Values are base64-encoded into
`data` (not `stringData`, which the API server never returns, so an observed Secret could not be
compared with the desired one).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from lokifi_storage.builders.labels import Owner, labels_for, owner_reference
from lokifi_storage.domain.schedule_diff import with_desired_hash

__all__ = ["CONNECTION_COMPONENT", "build_connection_secret", "decode_secret_data"]

CONNECTION_COMPONENT = "connection"


def build_connection_secret(owner: Owner, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A complete Secret object, owned by `owner`, with keys sorted for a stable body."""
    return with_desired_hash(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": owner.namespace,
                "labels": labels_for(owner, CONNECTION_COMPONENT),
                "ownerReferences": [owner_reference(owner)],
            },
            "type": "Opaque",
            "data": {
                key: base64.b64encode(value.encode()).decode("ascii")
                for key, value in sorted(data.items())
            },
        }
    )


def decode_secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """The `data` of a Secret object as text (undecodable values are kept as base64 text)."""
    decoded: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            decoded[key] = str(value)
    return decoded
