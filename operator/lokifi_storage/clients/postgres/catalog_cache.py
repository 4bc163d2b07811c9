"""The trees of the last catalog observation per server and request, kept between reconciles.

Deparsing every bound and rebuilding every relation is the cost of observing a table of
thousands of partitions, and a resync almost always finds the catalog as it left it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from lokifi_storage.domain.partitions.catalog import ObservedRelation, QName

__all__ = ["CATALOG_CACHE", "CatalogCache", "Trees"]

Trees = dict[QName, tuple[ObservedRelation, int]]


class CatalogCache:
    """The trees of the last observation per server and request, with its fingerprint.

    The fingerprint (catalog_query.FINGERPRINT_QUERY) changes with any row the catalog query reads,
    so equal fingerprints give the trees back; it is read before the trees it is stored with,
    so a change in between only costs one more full observation. Bounded, oldest dropped.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], tuple[tuple[int, str], Trees]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], fingerprint: tuple[int, str]) -> Trees | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != fingerprint:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def has(self, key: tuple[str, str]) -> bool:
        """Whether trees are kept for `key`: without them a fingerprint can only miss."""
        with self._lock:
            return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def put(self, key: tuple[str, str], fingerprint: tuple[int, str], trees: Trees) -> None:
        with self._lock:
            self._entries[key] = (fingerprint, trees)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


CATALOG_CACHE = CatalogCache()
