"""lokifi-storage-operator: keeps Lokifi's storage stack at the state a LokifiStorage declares."""
