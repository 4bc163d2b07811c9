"""The compiled part of the package: the SQLite-to-COPY converter (clients/_sqlite_copy.c).

Everything else is declared in pyproject.toml. The extension is optional: where no C compiler,
Python headers or SQLite headers are found, the build says so and goes on, and the migration
uses its Python converters (same results, slower).
"""

from pathlib import Path

from setuptools import Extension, setup

SOURCE = "operator/lokifi_storage/clients/_sqlite_copy.c"

setup(
    # Absent only in the Dockerfile's first step, which installs the dependencies alone.
    ext_modules=[
        Extension(
            "lokifi_storage.clients._sqlite_copy",
            sources=[SOURCE],
            libraries=["sqlite3"],
            extra_compile_args=["-O2", "-std=gnu11"],
            optional=True,
        )
    ]
    if Path(SOURCE).exists()
    else [],
)
