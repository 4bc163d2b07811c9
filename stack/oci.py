"""OCI image archives written with the standard library: the node's images without any registry.

An archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) in one tar, the
form `ctr images import` reads and that a registry accepts unchanged (`skopeo copy
oci-archive:...`). Layers are gzip-compressed with a zero mtime, so the same root filesystem
always gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config: what `docker inspect` shows under Config."""

    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    user: str = ""
    env: Mapping[str, str] | None = None
    working_dir: str = "/"
    exposed_ports: Sequence[int] = ()

    def as_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"Entrypoint": list(self.entrypoint)}
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.user:
            config["User"] = self.user
        if self.env:
            config["Env"] = [f"{key}={value}" for key, value in self.env.items()]
        config["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            config["ExposedPorts"] = {f"{port}/tcp": {} for port in self.exposed_ports}
        return config


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A compressed layer: its file, the digest of its plain tar (diff_id), its own digest."""

    path: Path
    diff_id: str
    digest: str
    size: int

    def save(self, meta: Path) -> None:
        meta.write_text(json.dumps({"diff_id": self.diff_id, "digest": self.digest}))

    @classmethod
    def load(cls, path: Path, meta: Path) -> Blob:
        data = json.loads(meta.read_text())
        return cls(path, data["diff_id"], data["digest"], path.stat().st_size)


def compress_layer(layer_tar: Path, dest: Path) -> Blob:
    """gzip a layer tar into `dest` (written aside, then renamed)."""
    plain = hashlib.sha256()
    tmp = dest.with_name(dest.name + ".partial")
    with (
        open(layer_tar, "rb") as src,
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
    ):
        while chunk := src.read(1 << 20):
            plain.update(chunk)
            gz.write(chunk)
    packed = hashlib.sha256()
    with open(tmp, "rb") as fh:
        while chunk := fh.read(1 << 20):
            packed.update(chunk)
    tmp.replace(dest)
    return Blob(
        dest, "sha256:" + plain.hexdigest(), "sha256:" + packed.hexdigest(), dest.stat().st_size
    )


def write_archive(
    out: Path, layers: Sequence[Blob], config: ImageConfig, name: str, history: Sequence[str]
) -> str:
    """Write an OCI archive of `layers` (bottom first, each made by `history`'s line) named
    `name` (repo:tag).

    Returns the manifest digest. Written to a temporary file and renamed, so a reader never
    sees half an archive.
    """
    layer_descs = [{"mediaType": LAYER, "digest": b.digest, "size": b.size} for b in layers]
    diff_ids = [b.diff_id for b in layers]
    image_config = json.dumps(
        {
            "created": EPOCH,
            "architecture": "amd64",
            "os": "linux",
            "config": config.as_json(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": EPOCH, "created_by": line} for line in history],
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": _descriptor(CONFIG, image_config),
            "layers": layer_descs,
        },
        sort_keys=True,
    ).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {
                    **_descriptor(MANIFEST, manifest),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": tag,
                    },
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        },
        sort_keys=True,
    ).encode()
    tmp_out = out.with_suffix(".partial")
    with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tar, "index.json", index)
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for data in (image_config, manifest):
            _add_bytes(tar, f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data)
        for blob in layers:
            hexdigest = blob.digest.split(":", 1)[1]
            tar.add(blob.path, f"blobs/sha256/{hexdigest}", filter=_normalise)
    tmp_out.replace(out)
    return _digest(manifest)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _normalise(tarfile.TarInfo(name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = _normalise(tarfile.TarInfo(name))
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def read_archive(path: Path) -> dict[str, Any]:
    """index, manifest and config of an archive, after checking every blob against its digest
    and size (what a registry checks on push)."""
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        if "oci-layout" not in names:
            raise ValueError(f"{path}: no oci-layout file")

        def blob(desc: Mapping[str, Any]) -> bytes:
            algo, hexdigest = str(desc["digest"]).split(":", 1)
            member = tar.extractfile(f"blobs/{algo}/{hexdigest}")
            if member is None:
                raise ValueError(f"{path}: blob {desc['digest']} missing")
            data = member.read()
            if hashlib.sha256(data).hexdigest() != hexdigest or len(data) != desc["size"]:
                raise ValueError(f"{path}: blob {desc['digest']} does not match its descriptor")
            return data

        index_file = tar.extractfile("index.json")
        if index_file is None:
            raise ValueError(f"{path}: no index.json")
        index = json.loads(index_file.read())
        manifest = json.loads(blob(index["manifests"][0]))
        config = json.loads(blob(manifest["config"]))
        for layer in manifest["layers"]:
            blob(layer)
    return {"index": index, "manifest": manifest, "config": config}


def single_file_layer(path: Path, source: Path, inside: str) -> None:
    """A layer tar holding one executable file at `inside` (the pause image)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = _normalise(tar.gettarinfo(str(source), inside.lstrip("/")))
        info.mode = 0o755
        with open(source, "rb") as fh:
            tar.addfile(info, fh)
