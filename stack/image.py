"""The operator image, built without a registry: `python -m stack image [--import]`.

The Dockerfile needs a registry for its base image, which this machine cannot reach. This
recipe makes the same image from Debian's archive and PyPI: mmdebstrap builds a minimal
Debian 12 root with python3, the PostgreSQL client tools and CA certificates; the project and
its dependencies are installed as wheels (built here with pip) into /opt/lokifi, a venv of the
image's own python3, by that python running pip inside the root; then stack/oci.py writes the
root as a one-layer OCI archive that containerd imports and a registry accepts unchanged.

Same user, entry point, command, environment, ports and paths as the Dockerfile (tests/chart
compares them). One difference: pg_dump/pg_restore are Debian 12's PostgreSQL 15 client (the
major of the stack's servers), where the Dockerfile installs PGDG's newest major.

Two layers: the base (Debian, the user, the venv with every dependency) and the project
itself. Both are cached under ~/.cache/lokifi-storage/images by the hash of what goes in them,
with the Debian packages and the dependency wheels, so a change to the operator's code only
rebuilds the small project layer (seconds) and nothing is downloaded twice.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

from stack import oci
from stack.state import StackError

REPO = Path(__file__).resolve().parent.parent
DEBIAN_SUITE = "bookworm"
PG_MAJOR = 15
PACKAGES = ("python3", f"postgresql-client-{PG_MAJOR}", "ca-certificates")
VENV = "/opt/lokifi"
IMAGE_PYTHON = "python3.11"
# Bump when the base layer's recipe changes in a way its inputs do not show.
BASE_RECIPE = 1
UID = GID = 65532
USER_NAME = "lokifi"
ENTRYPOINT = ("lokifi-storage",)
CMD = ("run", "--all-namespaces")
PORTS = (8080, 9090)
ENV = {
    "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "LOKIFI_PG_BIN": f"/usr/lib/postgresql/{PG_MAJOR}/bin",
}
# Documentation and translations are not needed to run anything; licences stay.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)


def cache_root() -> Path:
    configured = os.environ.get("LOKIFI_IMAGE_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "lokifi-storage" / "images"
    return base.expanduser()


def version() -> str:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def image_name() -> str:
    """Under localhost/: a locally built image never poses as the published one."""
    return f"localhost/lokifi-storage-operator:{version()}"


def image_config() -> oci.ImageConfig:
    return oci.ImageConfig(
        entrypoint=ENTRYPOINT,
        cmd=CMD,
        user=f"{UID}:{GID}",
        env=ENV,
        exposed_ports=PORTS,
    )


def recipe() -> dict[str, object]:
    """What the Dockerfile must agree with besides the image config (tests/chart compares)."""
    return {
        "venv": VENV,
        "uid": UID,
        "gid": GID,
        "user": USER_NAME,
        "home": "/nonexistent",
        "shell": "/usr/sbin/nologin",
        "packages": [p.replace(str(PG_MAJOR), "${PG_MAJOR}") for p in PACKAGES],
    }


def _dependencies() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def _app_digest() -> str:
    """What the application layer is made from: the project's code and metadata."""
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml", REPO / "setup.py", REPO / "README.md"]
    files += sorted(p for p in (REPO / "operator").rglob("*") if p.is_file() and _shipped(p))
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _shipped(path: Path) -> bool:
    # A .so in the tree is the editable install's own build; the wheel compiles its own.
    return "__pycache__" not in path.parts and not path.name.endswith((".pyc", ".egg-info", ".so"))


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{what} failed ({result.returncode}):\n{result.stderr[-4000:]}")


def _constraints() -> str:
    """The versions installed where this runs (the project's venv, where the tests pass): the
    image gets exactly those, and pip has nothing left to resolve."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return "".join(line + "\n" for line in result.stdout.splitlines() if "==" in line)


def _wheels(work: Path, constraints: str) -> tuple[Path, str]:
    """Wheels of the dependencies (cached by their list and versions) and pip.
    Returns the folder and the pip wheel's file name.

    Dependencies are resolved by Debian's python3 - the image's interpreter - so environment
    markers (redis needs async-timeout below Python 3.11.3) are those of the image, not of the
    venv this runs in; pip itself comes as a wheel and runs from it.
    """
    deps = _dependencies()
    key = hashlib.sha256(("\n".join(sorted(deps)) + constraints).encode()).hexdigest()[:16]
    cached = cache_root() / f"wheels-{key}"
    if not cached.exists():
        tmp = cache_root() / f".wheels-{key}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", "--dest", str(tmp), "pip"], "pip download pip")  # fmt: skip
        pins = work / "constraints.txt"
        pins.write_text(constraints)
        pip = [_image_python(), str(next(tmp.glob("pip-*.whl")) / "pip")]
        _run([*pip, "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(tmp),
              "-c", str(pins), *deps], "pip wheel (dependencies)")  # fmt: skip
        tmp.rename(cached)
    wheels = work / "wheels"
    shutil.copytree(cached, wheels)
    (wheels / "requirements.txt").write_text("".join(d + "\n" for d in deps))
    pip_wheel = next(p.name for p in wheels.glob("pip-*.whl"))
    return wheels, pip_wheel


def _image_python() -> str:
    """Debian 12's python3 on this machine: the interpreter (3.11.2) the image gets."""
    python = "/usr/bin/python3"
    probe = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.stdout.strip() != "True":
        raise StackError(f"{python} must be Debian 12's Python 3.11 (the image's interpreter)")
    return python


def _rootfs(work: Path, wheels: Path, pip_wheel: str) -> Path:
    """mmdebstrap a minimal Debian root with the venv installed; returns its tar."""
    debs = cache_root() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    out = work / "rootfs.tar"
    in_root = 'chroot "$1" '
    pip_install = (
        f"{in_root}{VENV}/bin/python /tmp/wheels/{pip_wheel}/pip install --quiet --no-index"
        f" --no-compile --disable-pip-version-check --find-links /tmp/wheels"
        " -r /tmp/wheels/requirements.txt"
    )
    argv = [
        "mmdebstrap",
        "--quiet",
        "--mode=root",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(PACKAGES)}",
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        "--aptopt=APT::Install-Recommends false",
        # The .deb files are kept between builds (and left out of the image).
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        '--customize-hook=mkdir -p "$1"/tmp/wheels',
        f"--customize-hook=sync-in {wheels} /tmp/wheels",
        f"--customize-hook={in_root}python3 -m venv --without-pip {VENV}",
        f"--customize-hook={pip_install}",
        '--customize-hook=rm -rf "$1"/tmp/wheels',
        f"--customize-hook={in_root}groupadd --system --gid {GID} {USER_NAME}",
        f"--customize-hook={in_root}useradd --system --uid {UID} --gid {GID}"
        f" --home-dir {recipe()['home']} --no-create-home --shell {recipe()['shell']} {USER_NAME}",
        f"--customize-hook={in_root}{VENV}/bin/python -c 'import kopf, psycopg, redis, boto3'",
        f"--customize-hook={in_root}{ENV['LOKIFI_PG_BIN']}/pg_dump --version",
        f"--customize-hook={in_root}{ENV['LOKIFI_PG_BIN']}/pg_restore --version",
        DEBIAN_SUITE,
        str(out),
    ]
    # Nothing of this machine's pip configuration reaches the pip inside the root.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["SOURCE_DATE_EPOCH"] = "0"
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise StackError(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return out


def _base_layer() -> oci.Blob:
    """Debian, python3, the PostgreSQL client, the user, and the venv with every dependency:
    rebuilt only when the recipe, the dependencies or their versions change."""
    constraints = _constraints()
    key_text = json.dumps(
        [BASE_RECIPE, DEBIAN_SUITE, PACKAGES, DPKG_OPTIONS, recipe(), _dependencies(), constraints]
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    blob, meta = cache_root() / f"base-{key}.tar.gz", cache_root() / f"base-{key}.json"
    if blob.exists() and meta.exists():
        return oci.Blob.load(blob, meta)
    work = cache_root() / f".base-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        wheels, pip_wheel = _wheels(work, constraints)
        rootfs = _rootfs(work, wheels, pip_wheel)
        layer = oci.compress_layer(rootfs, blob)
        layer.save(meta)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in cache_root().glob("base-*"):
        if old not in (blob, meta):
            old.unlink()
    return layer


def _app_layer(work: Path) -> Path:
    """The project itself, as pip installs it into the venv, in a layer of its own: a change to
    the operator's code rebuilds this (seconds), not the base."""
    wheel_dir, site = work / "wheel", work / "site"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
          str(wheel_dir), str(REPO)], "pip wheel (project)")  # fmt: skip
    wheel = next(wheel_dir.glob("*.whl"))
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
          "--target", str(site), str(wheel)], "pip install --target (project)")  # fmt: skip
    site_packages = f"{VENV.lstrip('/')}/lib/{IMAGE_PYTHON}/site-packages"
    layer = work / "app.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(site.rglob("*")):
            rel = path.relative_to(site)
            if rel.parts[0] == "bin" or "__pycache__" in rel.parts:
                continue
            tar.add(path, f"{site_packages}/{rel}", recursive=False, filter=_owned_by_root)
        for script in sorted((site / "bin").iterdir()):
            # pip wrote this machine's interpreter into the script; the image's is the venv's.
            body = script.read_bytes().split(b"\n", 1)[1]
            data = f"#!{VENV}/bin/python\n".encode() + body
            info = _owned_by_root(tarfile.TarInfo(f"{VENV.lstrip('/')}/bin/{script.name}"))
            info.mode, info.size = 0o755, len(data)
            tar.addfile(info, io.BytesIO(data))
    return layer


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def build(force: bool = False) -> Path:
    """The operator image's OCI archive for the current code, built unless cached.

    One build at a time per cache (several test sessions may ask at once): the others wait,
    then find the archive cached."""
    import fcntl

    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(force)


def _build(force: bool) -> Path:
    base = _base_layer()
    archive = cache_root() / f"operator-{base.digest[7:19]}-{_app_digest()}.oci.tar"
    if archive.exists() and not force:
        return archive
    work = cache_root() / f".app-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        app = oci.compress_layer(_app_layer(work), work / "app.tar.gz")
        oci.write_archive(
            archive,
            [base, app],
            image_config(),
            image_name(),
            [f"mmdebstrap {DEBIAN_SUITE} + pip (python -m stack image)",
             f"pip install lokifi-storage-operator {version()}"],
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in cache_root().glob("operator-*.oci.tar"):
        if old != archive:
            old.unlink()
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument(
        "--recipe", action="store_true", help="print the image config and user; build nothing"
    )
    parser.add_argument(
        "--inspect", action="store_true", help="print the built archive's config (digests checked)"
    )
    parser.add_argument("--import", dest="do_import", action="store_true",
                        help="import it into the node's containerd")  # fmt: skip
    args = parser.parse_args(argv)
    if args.recipe:
        print(json.dumps({**recipe(), "Config": image_config().as_json()}, indent=1))
        return 0
    started = time.monotonic()
    archive = build(force=args.force)
    if args.inspect:
        print(json.dumps(oci.read_archive(archive)["config"]["config"], indent=1))
        return 0
    size = archive.stat().st_size
    print(f"{image_name()} {archive} ({size / 2**20:.0f} MiB, {time.monotonic() - started:.0f}s)")
    if args.do_import:
        from stack import node
        from stack.state import State

        node.import_image(State.default(), archive, image_name())
        print(f"imported {image_name()} into the node")
    return 0
