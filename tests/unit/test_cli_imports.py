"""`lokifi-storage migrate ...` starts with the migration's modules only: the operator's
(Kubernetes, S3, Redis) cost about a CPU-second of imports before the first row, and the
migration is measured against pgloader (bench/migrate_vs_pgloader.py)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from lokifi_storage.cli import app, migrate_app

OPERATOR_MODULES = ("kubernetes", "boto3", "redis", "lokifi_storage.reconcile")


def _imported_by(argv: list[str]) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        "from lokifi_storage import cli\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('imported:', *(m for m in {OPERATOR_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(done.stdout.splitlines()[-1].split()[1:])


def test_the_migrate_command_imports_none_of_the_operator_s_modules() -> None:
    assert _imported_by(["lokifi-storage", "migrate", "sqlite", "--help"]) == set()
    # The other commands still have everything (and so the check above can fail).
    assert _imported_by(["lokifi-storage", "--help"]) == set(OPERATOR_MODULES)


def test_the_migrate_command_reads_the_same_in_both_apps() -> None:
    for argv in (["migrate", "--help"], ["migrate", "sqlite", "--help"]):
        lean = CliRunner().invoke(migrate_app(), argv)
        full = CliRunner().invoke(app, argv)
        assert lean.exit_code == full.exit_code == 0
        assert lean.output == full.output
