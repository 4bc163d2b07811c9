"""lokifi-storage-operator: keeps Lokifi's storage stack at the state a LokifiStorage declares."""

__all__ = ["API_GROUP", "API_VERSION", "KIND", "PLURAL"]

API_GROUP = "storage.lokifi.ai"
API_VERSION = "v1alpha1"
KIND = "LokifiStorage"
PLURAL = "lokifistorages"
