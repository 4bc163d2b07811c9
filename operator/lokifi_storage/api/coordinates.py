"""Where the LokifiStorage resource lives in the Kubernetes API: its group, version and names.

Defined once, in the lowest layer, because the CRD generator, the object builders (owner
references), the Kopf decorators and the client that reads the resource must all agree: a
version bumped in one copy and not another would watch one API and write owner references to
another.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_VERSION",
    "CRD_NAME",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
]

GROUP: Final = "storage.lokifi.ai"
VERSION: Final = "v1alpha1"
KIND: Final = "LokifiStorage"
PLURAL: Final = "lokifistorages"
SINGULAR: Final = "lokifistorage"
SHORT_NAMES: Final = ("lks",)
#: `apiVersion` as written in a manifest or an owner reference
API_VERSION: Final = f"{GROUP}/{VERSION}"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"
