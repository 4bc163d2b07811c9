"""The Dockerfile and the chart agree: the user the pod runs as, the command, the ports, and the
PostgreSQL client tools the backup jobs look for; and the registry-free recipe of
`python -m stack image` (which tests/node builds and runs) agrees with the Dockerfile. These
checks read files only, so they keep the three from drifting apart without building anything."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from helmchart import CHART, one, render
from stackfixtures import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    """Arguments of every `NAME ...` line of the Dockerfile's last stage."""
    last_stage = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    return [m.group(1).strip() for m in re.finditer(rf"^{name} (.+)$", last_stage, re.M)]


def test_image_runs_as_the_user_the_chart_requires() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert instruction("USER") == [
        f"{values['podSecurityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
    ]


def test_image_entrypoint_is_the_cli_and_the_chart_runs_its_run_command(tmp_path: Path) -> None:
    assert json.loads(instruction("ENTRYPOINT")[0]) == ["lokifi-storage"]
    args = one(render(tmp_path), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    # Every flag the chart passes is one `lokifi-storage run` accepts.
    help_text = subprocess.run(
        [str(Path(sys.executable).with_name("lokifi-storage")), *args[:1], "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    for flag in args[1:]:
        assert flag.split("=")[0] in help_text, flag


def test_image_exposes_the_charts_health_and_metrics_ports() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    exposed = {int(p) for line in instruction("EXPOSE") for p in line.split()}
    assert exposed == {values["healthPort"], values["metrics"]["port"]}


def test_image_points_the_backup_jobs_at_its_postgresql_client_tools() -> None:
    assert "postgresql-client-${PG_MAJOR}" in DOCKERFILE
    assert "LOKIFI_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin" in DOCKERFILE
    assert "pg_dump --version; pg_restore --version" in DOCKERFILE


def _dockerfile_env() -> dict[str, str]:
    """The last stage's ENV instruction (continued over several lines) as a dict."""
    last_stage = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    match = re.search(r"^ENV ((?:.*\\\n)*.*)$", last_stage, re.M)
    assert match is not None
    return dict(pair.split("=", 1) for pair in match.group(1).replace("\\\n", " ").split())


def test_the_registry_free_recipe_builds_what_the_dockerfile_builds() -> None:
    """`python -m stack image` (mmdebstrap + pip, no registry) and the Dockerfile agree on the
    user, entry point, command, ports, environment, venv path and PostgreSQL client package."""
    recipe = json.loads(
        subprocess.run(
            [sys.executable, "-m", "stack", "image", "--recipe"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    config = recipe["Config"]
    assert config["User"] == instruction("USER")[0]
    assert config["Entrypoint"] == json.loads(instruction("ENTRYPOINT")[0])
    assert config["Cmd"] == json.loads(instruction("CMD")[0])
    exposed = {int(p) for line in instruction("EXPOSE") for p in line.split()}
    assert {int(p.split("/")[0]) for p in config["ExposedPorts"]} == exposed
    docker_env = _dockerfile_env()
    env = dict(item.split("=", 1) for item in config["Env"])
    assert set(docker_env) <= set(env)
    assert env["PATH"].startswith(docker_env["PATH"].split(":$PATH")[0] + ":")
    for key in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        assert env[key] == docker_env[key]
    # The same layout at each image's PostgreSQL major (Debian 12's 15 here, PGDG's there).
    major = env["LOKIFI_PG_BIN"].split("/")[4]
    assert docker_env["LOKIFI_PG_BIN"].replace("${PG_MAJOR}", major) == env["LOKIFI_PG_BIN"]
    assert "postgresql-client-${PG_MAJOR}" in recipe["packages"]
    assert f"python -m venv {recipe['venv']}" in DOCKERFILE
    assert f"COPY --from=build {recipe['venv']} {recipe['venv']}" in DOCKERFILE
    useradd = (
        f"useradd --system --uid {recipe['uid']} --gid {recipe['gid']} "
        f"--home-dir {recipe['home']} --no-create-home"
    )
    assert useradd in " ".join(DOCKERFILE.replace("\\\n", " ").split())
    assert f"--shell {recipe['shell']} {recipe['user']}" in " ".join(
        DOCKERFILE.replace("\\\n", " ").split()
    )
