"""Kubernetes: etcd + kube-apiserver + kube-controller-manager on loopback, the envtest way.

No kubelet or scheduler here (stack/node.py adds them): without the node pods never run, but
every API object, RBAC decision, admission check, ownerReference garbage collection and namespace
deletion is the real thing. When KUBECONFIG already points at a reachable cluster, that cluster
is used and nothing is started.

The API server is configured for the node whether or not it runs: the ServiceAccount admission
plugin mounts tokens in Pods, the Node authorizer serves kubelets, and it reaches a kubelet
(`kubectl logs`) at the node's InternalIP with the admin certificate. A server started by an
older version of this file, with other flags, is restarted by `up` (a few seconds).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack.kube_pki import Pki, ensure_pki, write_kubeconfig
from stack.state import StackError, State, port_open, spawn, stop_pid, wait_for

K8S_VERSION = "v1.35.4"
HOST = "127.0.0.1"
ETCD_CLIENT_PORT = 52379
ETCD_PEER_PORT = 52380
APISERVER_PORT = 56443
CONTROLLER_MANAGER_PORT = 50257
SERVER = f"https://{HOST}:{APISERVER_PORT}"
SERVICE_CIDR = "10.0.0.0/24"
BUILD_SCRIPT = Path(__file__).resolve().parent / "k8s" / "build.sh"


def cache_dir() -> Path:
    root = os.environ.get("LOKIFI_K8S_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "lokifi-storage" / "k8s"
    return base.expanduser() / K8S_VERSION


def _kube_dir(state: State) -> Path:
    path = state.sub("kube")
    os.chmod(path, 0o700)
    return path


def _kubeconfig(state: State) -> Path:
    return state.root / "kubeconfig"


def _external_marker(state: State) -> Path:
    return state.root / "kube-external"


def _external_kubeconfig(state: State) -> str | None:
    marker = _external_marker(state)
    return marker.read_text().strip() if marker.exists() else None


def _kubectl() -> str:
    cached = cache_dir() / "kubectl"
    if cached.exists():
        return str(cached)
    return shutil.which("kubectl") or str(cached)


def env_values(state: State) -> dict[str, str]:
    external = _external_kubeconfig(state)
    return {"KUBECONFIG": external or str(_kubeconfig(state)), "KUBECTL": _kubectl()}


def ensure_binaries() -> Path:
    """Run stack/k8s/build.sh, which returns at once when the version's cache is complete."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"building the control plane failed (see output above); {BUILD_SCRIPT}")
    return Path(result.stdout.strip().splitlines()[-1])


def _kubectl_ready(kubeconfig: str) -> bool:
    kubectl = _kubectl()
    if not Path(kubectl).exists():
        return False
    try:
        probe = subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "--request-timeout=5s",
             "get", "--raw", "/readyz"],
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0 and probe.stdout.strip() == "ok"


def _https_ok(pki: Pki, url: str, client_cert: bool) -> bool:
    context = ssl.create_default_context(cafile=str(pki.ca_crt))
    if client_cert:
        context.load_cert_chain(str(pki.admin_crt), str(pki.admin_key))
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the controller manager's self-signed health port
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _etcd_ok() -> bool:
    try:
        url = f"http://{HOST}:{ETCD_CLIENT_PORT}/health"
        with urllib.request.urlopen(url, timeout=3) as resp:
            return b'"health":"true"' in resp.read()
    except (urllib.error.URLError, OSError):
        return False


def _running(state: State, name: str, port: int) -> bool:
    return state.running_pid(name) is not None and port_open(port)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


def _current(state: State, name: str, port: int, argv: list[str]) -> bool:
    """Running, and with exactly the command line this version of the stack would start."""
    pid = state.running_pid(name)
    return pid is not None and port_open(port) and _cmdline(pid) == argv


def _stop_outdated(state: State, name: str, port: int, argv: list[str]) -> None:
    """Stop our own server whose flags differ from `argv`, so it is started again with them."""
    pid = state.running_pid(name)
    if pid is not None and _cmdline(pid) != argv:
        # The API server lingers up to 30 s after SIGTERM for requests in flight; its state is
        # in etcd, so after 5 s it is killed and comes back at once with the new flags.
        stop_pid(pid, timeout=5)
        state.forget_pid(name)
        deadline = time.monotonic() + 10
        while port_open(port) and time.monotonic() < deadline:
            time.sleep(0.05)


def _start(state: State, name: str, argv: list[str], port: int) -> Path:
    _stop_outdated(state, name, port, argv)
    if port_open(port):
        raise StackError(f"port {port} is taken by a process this stack did not start")
    log = _kube_dir(state) / f"{name}.log"
    state.write_pid(name, spawn(argv, log, cwd=_kube_dir(state)))
    return log


def _start_etcd(state: State, bins: Path) -> None:
    if _running(state, "etcd", ETCD_CLIENT_PORT):
        return
    client, peer = f"http://{HOST}:{ETCD_CLIENT_PORT}", f"http://{HOST}:{ETCD_PEER_PORT}"
    log = _start(
        state,
        "etcd",
        [
            str(bins / "etcd"),
            "--name=lokifi-stack",
            f"--data-dir={_kube_dir(state) / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lokifi-stack={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        ETCD_CLIENT_PORT,
    )
    wait_for("etcd", _etcd_ok, 60, log)


def _apiserver_argv(state: State, bins: Path, pki: Pki) -> list[str]:
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://{HOST}:{ETCD_CLIENT_PORT}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={APISERVER_PORT}",
        f"--cert-dir={_kube_dir(state) / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving_crt}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_crt}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SERVER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        # As on OpenShift and hardened clusters: setting blockOwnerDeletion on an owned
        # object needs `update` on the owner's finalizers, which the chart's RBAC grants.
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
        f"--kubelet-client-certificate={pki.admin_crt}",
        f"--kubelet-client-key={pki.admin_key}",
        # The node's Hostname address is the machine's name, which may resolve anywhere.
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=0",
    ]


def _start_apiserver(state: State, bins: Path, pki: Pki) -> None:
    argv = _apiserver_argv(state, bins, pki)
    if _current(state, "kube-apiserver", APISERVER_PORT, argv):
        return
    log = _start(state, "kube-apiserver", argv, APISERVER_PORT)
    wait_for("kube-apiserver /readyz", lambda: _https_ok(pki, f"{SERVER}/readyz", True), 120, log)


def _controller_manager_argv(state: State, bins: Path, pki: Pki) -> list[str]:
    kubeconfig = str(_kubeconfig(state))
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={CONTROLLER_MANAGER_PORT}",
        f"--cert-dir={_kube_dir(state) / 'controller-manager-certs'}",
        "--controllers=*",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_crt}",
        f"--cluster-signing-cert-file={pki.ca_crt}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    ]


def _start_controller_manager(state: State, bins: Path, pki: Pki) -> None:
    argv = _controller_manager_argv(state, bins, pki)
    if _current(state, "kube-controller-manager", CONTROLLER_MANAGER_PORT, argv):
        return
    log = _start(state, "kube-controller-manager", argv, CONTROLLER_MANAGER_PORT)
    url = f"https://{HOST}:{CONTROLLER_MANAGER_PORT}/healthz"
    wait_for("kube-controller-manager /healthz", lambda: _https_ok(pki, url, False), 60, log)


def _use_external(state: State) -> bool:
    """KUBECONFIG from the caller's environment, when it is not ours and its cluster answers."""
    configured = os.environ.get("KUBECONFIG", "")
    ours = str(_kubeconfig(state))
    if not configured or configured == ours:
        return False
    if not _kubectl_ready(configured):
        return False
    _external_marker(state).write_text(configured + "\n")
    return True


def up(state: State) -> bool:
    """Start (or reuse) the control plane; True when nothing had to be started."""
    external = _external_kubeconfig(state)
    if external and _kubectl_ready(external):
        return True
    _external_marker(state).unlink(missing_ok=True)
    if _use_external(state):
        return True
    bins = cache_dir()
    pki = Pki(_kube_dir(state) / "pki")
    if (
        _running(state, "etcd", ETCD_CLIENT_PORT)
        and _current(state, "kube-apiserver", APISERVER_PORT, _apiserver_argv(state, bins, pki))
        and _current(
            state,
            "kube-controller-manager",
            CONTROLLER_MANAGER_PORT,
            _controller_manager_argv(state, bins, pki),
        )
        and _kubectl_ready(str(_kubeconfig(state)))
    ):
        return True
    bins = ensure_binaries()
    pki = ensure_pki(_kube_dir(state) / "pki")
    write_kubeconfig(pki, SERVER, _kubeconfig(state))
    _start_etcd(state, bins)
    _start_apiserver(state, bins, pki)
    _start_controller_manager(state, bins, pki)
    return False


def down(state: State) -> list[str]:
    """Stop what we started, controller manager first and etcd last; forget an external one."""
    _external_marker(state).unlink(missing_ok=True)
    stopped = []
    for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
        pid = state.running_pid(name)
        if pid is not None:
            stop_pid(pid, timeout=30)
            stopped.append(name)
        state.forget_pid(name)
    return stopped


def status(state: State) -> list[tuple[str, bool, str]]:
    external = _external_kubeconfig(state)
    if external:
        return [("kubernetes", _kubectl_ready(external), f"external cluster of {external}")]
    rows = [
        ("etcd", _running(state, "etcd", ETCD_CLIENT_PORT), f"http://{HOST}:{ETCD_CLIENT_PORT}"),
        ("kube-apiserver", _running(state, "kube-apiserver", APISERVER_PORT)
         and _kubectl_ready(str(_kubeconfig(state))), SERVER),
        ("kube-controller-manager",
         _running(state, "kube-controller-manager", CONTROLLER_MANAGER_PORT),
         f"https://{HOST}:{CONTROLLER_MANAGER_PORT}"),
    ]  # fmt: skip
    return rows
