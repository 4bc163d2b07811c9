"""`lokifi-storage version` prints the version pyproject.toml declares (the image is tagged with
it too: stack/image.py), without asking the installed distribution."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from lokifi_storage import __version__
from lokifi_storage.cli import app

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_package_version_is_the_projects() -> None:
    assert __version__ == tomllib.loads(PYPROJECT.read_text())["project"]["version"]


def test_the_version_command_prints_it() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{__version__}\n"
