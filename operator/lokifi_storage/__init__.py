"""lokifi-storage-operator: keeps Lokifi's storage stack at the state a LokifiStorage declares."""

__all__ = ["__version__"]

# pyproject.toml's project.version (tests/unit/test_version.py keeps the two equal): read here
# rather than from the installed distribution, so the package never loads anything by name.
__version__ = "0.1.0"
