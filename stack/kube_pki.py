"""Certificates and the admin kubeconfig for the local API server, made with Debian's openssl.

The envtest recipe: a self-signed CA, a serving cert for 127.0.0.1 and the in-cluster service
names, an admin client cert in group system:masters, and a service-account key pair. Keys are
generated once and kept (0600) so a restarted API server keeps trusting existing tokens.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack.state import StackError

SERVING_NAMES = (
    "IP:127.0.0.1",
    "IP:10.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pki:
    """File layout of <state>/kube/pki."""

    dir: Path

    @property
    def ca_crt(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_crt(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_crt(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def _openssl(*args: str) -> None:
    result = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr[-1500:]}")


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    os.chmod(path, 0o600)


def _sign(pki: Pki, key: Path, crt: Path, subject: str, extensions: list[str]) -> None:
    """Issue crt for key, signed by the CA, with the given X.509v3 extension lines."""
    csr = crt.with_suffix(".csr")
    ext = crt.with_suffix(".ext")
    ext.write_text("\n".join(extensions) + "\n")
    try:
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_crt), "-CAkey", str(pki.ca_key),
            "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", str(ext),
            "-out", str(crt),
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


def ensure_pki(directory: Path) -> Pki:
    """Create whatever of the CA, serving, admin and service-account material is missing."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pki = Pki(directory)
    if not pki.ca_crt.exists():
        _new_key(pki.ca_key)
        _openssl(
            "req", "-x509", "-new", "-key", str(pki.ca_key), "-subj", "/CN=lokifi-stack-ca",
            "-days", "3650", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out", str(pki.ca_crt),
        )  # fmt: skip
        pki.serving_crt.unlink(missing_ok=True)
        pki.admin_crt.unlink(missing_ok=True)
    if not pki.serving_crt.exists():
        _new_key(pki.serving_key)
        _sign(
            pki, pki.serving_key, pki.serving_crt, "/CN=kube-apiserver",
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth",
                "subjectAltName=" + ",".join(SERVING_NAMES),
            ],
        )  # fmt: skip
    if not pki.admin_crt.exists():
        _new_key(pki.admin_key)
        _sign(
            pki, pki.admin_key, pki.admin_crt, "/O=system:masters/CN=lokifi-stack-admin",
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=clientAuth",
            ],
        )  # fmt: skip
    if not pki.sa_pub.exists():
        _new_key(pki.sa_key)
        _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    return pki


def ensure_node_cert(pki: Pki, node_name: str) -> tuple[Path, Path]:
    """The kubelet's client cert: user system:node:<name> in group system:nodes, which the Node
    authorizer gives exactly what a kubelet needs (its pods' Secrets, its own Node and Lease)."""
    crt, key = pki.dir / f"node-{node_name}.crt", pki.dir / f"node-{node_name}.key"
    if not crt.exists():
        _new_key(key)
        _sign(
            pki, key, crt, f"/O=system:nodes/CN=system:node:{node_name}",
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=clientAuth",
            ],
        )  # fmt: skip
    return crt, key


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    pki: Pki, server: str, path: Path, cert: Path | None = None, key: Path | None = None
) -> None:
    """A kubeconfig (the admin's unless `cert`/`key` say otherwise), credentials embedded so
    the file alone is enough (mode 0600)."""
    cert = cert or pki.admin_crt
    key = key or pki.admin_key
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: lokifi-stack
  cluster:
    server: {server}
    certificate-authority-data: {_b64(pki.ca_crt)}
users:
- name: lokifi-stack-admin
  user:
    client-certificate-data: {_b64(cert)}
    client-key-data: {_b64(key)}
contexts:
- name: lokifi-stack
  context:
    cluster: lokifi-stack
    user: lokifi-stack-admin
    namespace: default
current-context: lokifi-stack
"""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
