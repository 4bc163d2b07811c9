"""The node: containerd, kubelet, kube-scheduler and a relay make the stack a one-node cluster.

With it the chart's Deployment runs as a Pod and the operator's CronJobs run as Jobs. It needs
the `kube` service (the API server) and runs as root, like the rest of the stack.

- containerd (Debian's) with its own config, root, state and socket under <state>/node, the
  overlayfs snapshotter, runc with the cgroupfs driver, and `restrict_oom_score_adj` (processes
  here lack CAP_SYS_RESOURCE, so a Pod's negative OOM score would fail every container).
- No image is ever pulled: the sandbox (pause) image is a static binary built with gcc and
  imported as an OCI archive (stack/oci.py); the operator image comes from stack/image.py.
- Pod network: Debian's CNI bridge plugin on bridge lokifi0 (10.244.0.0/24), gateway 10.244.0.1
  owned by the host. Pods get a route to the Service range only: no default route, no masquerade,
  ip_forward untouched. They reach PostgreSQL, Redis, S3 and the API server at the gateway, and
  the `kubernetes` Service at 10.0.0.1:443, through stack/relay.py.
- kubelet (built from the control plane's Go module set) with cgroup v1 + cgroupfs, registered
  as node lokifi-node at 10.244.0.1, authenticated as system:node:lokifi-node.

`down` undoes every change to the host: Pods' processes, mounts under <state>/node, the
/kubepods cgroups, the bridge, the sysctls kubelet sets (restored to their values before `up`),
the links kubelet makes in /var/log/containers, and the Node object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack import kube
from stack.kube_pki import Pki, ensure_node_cert, write_kubeconfig
from stack.state import StackError, State, log_tail, port_open, spawn, stop_pid, wait_for

NODE_NAME = "lokifi-node"
BRIDGE = "lokifi0"
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
KUBERNETES_SERVICE_IP = "10.0.0.1"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
SCHEDULER_PORT = 50259
PAUSE_IMAGE = "localhost/lokifi/pause:3.10"
CNI_BIN = Path("/usr/lib/cni")
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
RUNC = "/usr/sbin/runc"
CONTAINER_LOGS = Path("/var/log/containers")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# What kubelet writes at start (setupKernelTunables) and the bridge plugin could: saved before
# the first `up` and written back by `down`.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
)
BUILD_SCRIPT = kube.BUILD_SCRIPT
PAUSE_SOURCE = Path(__file__).resolve().parent / "node" / "pause.c"


def relayed_ports() -> list[tuple[str, int, int]]:
    """(listen host, listen port, loopback port): the servers Pods reach at this machine."""
    from stack import postgres, redis_cluster, s3

    ports = [postgres.PRIMARY_PORT, postgres.REPLICA_PORT, *redis_cluster.PORTS, s3.PORT]
    ports.append(kube.APISERVER_PORT)
    pairs = [(GATEWAY, port, port) for port in ports]
    pairs.append((KUBERNETES_SERVICE_IP, 443, kube.APISERVER_PORT))
    return pairs


# --- paths ---------------------------------------------------------------------------------------


def _dir(state: State) -> Path:
    path = state.sub("node")
    os.chmod(path, 0o700)
    return path


def _socket(state: State) -> Path:
    return _dir(state) / "containerd" / "containerd.sock"


def _kubelet_root(state: State) -> Path:
    return _dir(state) / "kubelet"


def _bins() -> Path:
    cache = kube.cache_dir()
    return cache.with_name(cache.name + "-node")


def ensure_binaries() -> Path:
    """kubelet and kube-scheduler from stack/k8s/build.sh (cached by version)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "node"], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"building kubelet failed (see output above); {BUILD_SCRIPT} node")
    return Path(result.stdout.strip().splitlines()[-1])


def ctr(state: State, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Debian's ctr against the node's containerd, namespace k8s.io (the CRI's)."""
    result = subprocess.run(
        [CTR, "--address", str(_socket(state)), "--namespace", "k8s.io", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise StackError(f"ctr {' '.join(args)} failed: {result.stderr.strip()[-1500:]}")
    return result


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StackError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


# --- host changes --------------------------------------------------------------------------------


def _sysctl_file(state: State) -> Path:
    return _dir(state) / "sysctl-before.json"


def _save_sysctls(state: State) -> None:
    """Remember the host's values once, before the first change (a second `up` keeps them)."""
    path = _sysctl_file(state)
    if path.exists():
        return
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = (Path("/proc/sys") / name).read_text().strip()
    path.write_text(json.dumps(values, indent=1) + "\n")


def _restore_sysctls(state: State) -> list[str]:
    path = _sysctl_file(state)
    if not path.exists():
        return []
    changed = []
    for name, value in json.loads(path.read_text()).items():
        target = Path("/proc/sys") / name
        with contextlib.suppress(OSError):
            if target.read_text().strip() != value:
                target.write_text(value + "\n")
                changed.append(f"sysctl {name.replace('/', '.')}={value}")
    path.unlink()
    return changed


def _bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def _bridge_up() -> None:
    """The bridge with the gateway and the `kubernetes` Service IP as addresses of this host.

    The Service range on the bridge also keeps the host's own connections to any cluster IP on
    this machine instead of the default route.
    """
    if not _bridge_exists():
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addresses = _run("ip", "-o", "addr", "show", "dev", BRIDGE).stdout
    prefix = POD_SUBNET.split("/")[1]
    for address in (
        f"{GATEWAY}/{prefix}",
        f"{KUBERNETES_SERVICE_IP}/{kube.SERVICE_CIDR.split('/')[1]}",
    ):
        if f" {address} " not in addresses:
            _run("ip", "addr", "add", address, "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def _bridge_down() -> list[str]:
    if not _bridge_exists():
        return []
    _run("ip", "link", "delete", BRIDGE, check=False)
    return [f"bridge {BRIDGE}"]


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest (latest) first."""
    found = []
    prefix = str(root)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return list(reversed(found))


def _unmount_all(root: Path) -> list[str]:
    done = []
    for _ in range(5):
        points = _mounts_under(root)
        if not points:
            break
        for point in points:
            if _run("umount", point, check=False).returncode != 0:
                _run("umount", "--lazy", point, check=False)
            done.append(point)
    return [f"{len(set(done))} mounts under {root}"] if done else []


def _remove_cgroups() -> list[str]:
    """rmdir /sys/fs/cgroup/*/kubepods, children first (empty once every Pod process is gone)."""
    removed = 0
    for hierarchy in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.exists() else []:
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        for _ in range(20):
            try:
                top.rmdir()
                removed += 1
                break
            except OSError:
                time.sleep(0.1)
    return ["kubepods cgroups"] if removed else []


def _remove_log_links(state: State) -> list[str]:
    """The /var/log/containers links kubelet made to our Pods' logs (and the folder if ours)."""
    if not CONTAINER_LOGS.is_dir():
        return []
    ours = str(_dir(state))
    for link in CONTAINER_LOGS.iterdir():
        if link.is_symlink() and os.readlink(link).startswith(ours):
            link.unlink()
    marker = _dir(state) / "created-var-log-containers"
    if marker.exists():
        with contextlib.suppress(OSError):
            CONTAINER_LOGS.rmdir()
        marker.unlink()
    return []


# --- containerd ----------------------------------------------------------------------------------


def _containerd_config(state: State) -> Path:
    base = _dir(state)
    cni = base / "cni"
    (cni / "net.d").mkdir(parents=True, exist_ok=True)
    (cni / "net.d" / "10-lokifi.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "lokifi",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": False,
                        "ipMasq": False,
                        "hairpinMode": False,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                            "routes": [{"dst": kube.SERVICE_CIDR, "gw": GATEWAY}],
                            "dataDir": str(cni / "ipam"),
                        },
                    }
                ],
            },
            indent=1,
        )
        + "\n"
    )
    config = base / "containerd" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    config.write_text(
        f"""version = 2
root = "{base / "containerd" / "root"}"
state = "{base / "containerd" / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{_socket(state)}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{cni / "net.d"}"
"""
    )
    return config


def _containerd_ok(state: State) -> bool:
    return _socket(state).exists() and ctr(state, "version", check=False).returncode == 0


# No image is ever pulled from outside: every registry request containerd makes goes to a
# proxy address on loopback where nothing listens, so a Pod naming an image that was not
# imported fails with ErrImagePull at once, without even a name lookup of the registry.
NO_PULL = {
    key: "http://127.0.0.1:9" for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
}


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def _start_containerd(state: State) -> None:
    pid = state.running_pid("containerd")
    if pid is not None and _containerd_ok(state):
        if NO_PULL.items() <= _environ(pid).items():
            return
        # Started without the pull guard: restart it (running containers keep running).
        stop_pid(pid, timeout=30)
        state.forget_pid("containerd")
    config = _containerd_config(state)
    _socket(state).unlink(missing_ok=True)
    log = _dir(state) / "containerd.log"
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("NO_PROXY", "ALL_PROXY")}
    env.update(NO_PULL)
    state.write_pid("containerd", spawn([CONTAINERD, "--config", str(config)], log, env=env))
    wait_for("containerd", lambda: _containerd_ok(state), 60, log)


def _has_image(state: State, name: str) -> bool:
    listed = ctr(state, "images", "ls", "--quiet", f"name=={name}", check=False)
    return name in listed.stdout.split()


def import_image(state: State, archive: Path, name: str) -> None:
    """Import (and unpack) an OCI archive into the CRI's namespace, replacing an older `name`."""
    ctr(state, "images", "import", "--platform", "linux/amd64", str(archive))
    if not _has_image(state, name):
        raise StackError(f"{archive} imported but containerd has no image {name}")


def _pause_archive() -> Path:
    """The static pause binary as a one-file image, built once per source version."""
    import hashlib

    from stack import oci
    from stack.image import cache_root

    digest = hashlib.sha256(PAUSE_SOURCE.read_bytes()).hexdigest()[:16]
    archive = cache_root() / f"pause-{digest}.oci.tar"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    build = archive.with_suffix(".build")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    try:
        binary = build / "pause"
        _run("gcc", "-Os", "-static", "-o", str(binary), str(PAUSE_SOURCE))
        _run("strip", str(binary))
        layer = build / "layer.tar"
        oci.single_file_layer(layer, binary, "/pause")
        oci.write_archive(
            archive,
            [oci.compress_layer(layer, build / "layer.tar.gz")],
            oci.ImageConfig(entrypoint=["/pause"], user="65535:65535"),
            PAUSE_IMAGE,
            ["gcc -Os -static stack/node/pause.c"],
        )
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return archive


# --- relay, scheduler, kubelet -------------------------------------------------------------------


def _relay_argv() -> list[str]:
    pairs = [f"{host}:{port}=127.0.0.1:{target}" for host, port, target in relayed_ports()]
    return [sys.executable, "-m", "stack.relay", *pairs]


def _start_relay(state: State) -> None:
    if state.running_pid("node-relay") is not None and port_open(443, KUBERNETES_SERVICE_IP):
        return
    log = _dir(state) / "relay.log"
    repo = Path(__file__).resolve().parent.parent
    state.write_pid("node-relay", spawn(_relay_argv(), log, cwd=repo))
    wait_for("relay", lambda: port_open(443, KUBERNETES_SERVICE_IP), 30, log)


def _https_ok(url: str) -> bool:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed health ports of our own processes
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start_scheduler(state: State, bins: Path) -> None:
    url = f"https://127.0.0.1:{SCHEDULER_PORT}/healthz"
    if state.running_pid("kube-scheduler") is not None and _https_ok(url):
        return
    if port_open(SCHEDULER_PORT):
        raise StackError(f"port {SCHEDULER_PORT} is taken by a process this stack did not start")
    kubeconfig = str(state.root / "kubeconfig")
    log = _dir(state) / "kube-scheduler.log"
    argv = [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={SCHEDULER_PORT}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    ]
    state.write_pid("kube-scheduler", spawn(argv, log, cwd=_dir(state)))
    wait_for("kube-scheduler /healthz", lambda: _https_ok(url), 60, log)


def _kubelet_config(state: State, pki: Pki) -> tuple[Path, Path]:
    base = _dir(state)
    crt, key = ensure_node_cert(pki, NODE_NAME)
    kubeconfig = base / "kubelet.kubeconfig"
    write_kubeconfig(pki, kube.SERVER, kubeconfig, crt, key)
    for sub in ("pod-logs", "volume-plugins"):
        (base / sub).mkdir(exist_ok=True)
    config = base / "kubelet.yaml"
    settings = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{_socket(state)}",
        "address": GATEWAY,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca_crt)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        # No cluster DNS and none of the host's resolvers: Pods address servers by IP.
        "resolvConf": "",
        "podLogsDir": str(base / "pod-logs"),
        "volumePluginDir": str(base / "volume-plugins"),
        # Images cannot be pulled again here, so kubelet must never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
    }
    config.write_text(json.dumps(settings, indent=1) + "\n")
    return config, kubeconfig


def _kubelet_healthy() -> bool:
    try:
        url = f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"
        with urllib.request.urlopen(url, timeout=3) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _kubectl(state: State, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kube._kubectl(), "--kubeconfig", str(state.root / "kubeconfig"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def node_ready(state: State) -> bool:
    probe = _kubectl(
        state,
        "get",
        "node",
        NODE_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    )
    return probe.returncode == 0 and probe.stdout.strip() == "True"


def _start_kubelet(state: State, bins: Path, pki: Pki) -> None:
    if state.running_pid("kubelet") is not None and _kubelet_healthy():
        return
    for port in (KUBELET_HEALTHZ_PORT,):
        if port_open(port):
            raise StackError(f"port {port} is taken by a process this stack did not start")
    if not CONTAINER_LOGS.exists():
        CONTAINER_LOGS.mkdir(parents=True)
        (_dir(state) / "created-var-log-containers").touch()
    config, kubeconfig = _kubelet_config(state, pki)
    log = _dir(state) / "kubelet.log"
    argv = [
        str(bins / "kubelet"),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={_kubelet_root(state)}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={GATEWAY}",
        "--v=0",
    ]
    state.write_pid("kubelet", spawn(argv, log, cwd=_dir(state)))
    wait_for("kubelet /healthz", _kubelet_healthy, 60, log)


# --- service interface ---------------------------------------------------------------------------


def env_values(state: State) -> dict[str, str]:
    return {"LOKIFI_NODE_GATEWAY": GATEWAY}


def up(state: State) -> bool:
    """Start (or reuse) the node; True when it was already running and Ready."""
    if not kube.status(state) or not all(ok for _, ok, _ in kube.status(state)):
        raise StackError("the node needs the API server: run `python -m stack up --only kube`")
    if kube._external_kubeconfig(state):
        raise StackError("the node runs only with the stack's own API server, not an external one")
    names = ("containerd", "node-relay", "kube-scheduler", "kubelet")
    containerd = state.running_pid("containerd")
    if (
        all(state.running_pid(name) is not None for name in names)
        and containerd is not None
        and NO_PULL.items() <= _environ(containerd).items()
        and node_ready(state)
    ):
        return True
    bins = ensure_binaries()
    _save_sysctls(state)
    _bridge_up()
    _start_relay(state)
    _start_containerd(state)
    if not _has_image(state, PAUSE_IMAGE):
        import_image(state, _pause_archive(), PAUSE_IMAGE)
    _start_scheduler(state, bins)
    _start_kubelet(state, bins, Pki(state.root / "kube" / "pki"))
    wait_for("node Ready", lambda: node_ready(state), 120, _dir(state) / "kubelet.log")
    return False


def _kill_containers(state: State) -> list[str]:
    """Kill every container's task (Pods and sandboxes) so their shims exit with them."""
    if not _socket(state).exists() or state.running_pid("containerd") is None:
        return []
    listed = ctr(state, "tasks", "ls", "--quiet", check=False).stdout.split()
    for task in listed:
        ctr(state, "tasks", "kill", "--signal", "SIGKILL", task, check=False)
    deadline = time.monotonic() + 15
    for task in listed:
        while time.monotonic() < deadline:
            if ctr(state, "tasks", "delete", task, check=False).returncode == 0:
                break
            time.sleep(0.2)
    return [f"{len(listed)} containers"] if listed else []


def down(state: State) -> list[str]:
    stopped: list[str] = []
    if state.running_pid("kubelet") is not None and kube._kubectl_ready(
        str(state.root / "kubeconfig")
    ):
        _kubectl(state, "delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false")
    for name in ("kubelet", "kube-scheduler"):
        pid = state.running_pid(name)
        if pid is not None:
            stop_pid(pid, timeout=30)
            stopped.append(name)
        state.forget_pid(name)
    stopped += _kill_containers(state)
    for name in ("containerd", "node-relay"):
        pid = state.running_pid(name)
        if pid is not None:
            stop_pid(pid, timeout=30)
            stopped.append(name)
        state.forget_pid(name)
    base = state.root / "node"
    if base.exists():
        stopped += _unmount_all(base)
        stopped += _remove_log_links(state)
    stopped += _remove_cgroups()
    stopped += _bridge_down()
    if base.exists():
        stopped += _restore_sysctls(state)
    return stopped


def status(state: State) -> list[tuple[str, bool, str]]:
    rows = []
    for name, detail in (
        ("containerd", str(_socket(state))),
        ("node-relay", f"{GATEWAY} and {KUBERNETES_SERVICE_IP}:443 to loopback"),
        ("kube-scheduler", f"https://127.0.0.1:{SCHEDULER_PORT}"),
    ):
        rows.append((name, state.running_pid(name) is not None, detail))
    kubelet_up = state.running_pid("kubelet") is not None and _kubelet_healthy()
    rows.append(("kubelet", kubelet_up and node_ready(state), f"node {NODE_NAME} at {GATEWAY}"))
    return rows


def logs(state: State) -> str:
    return log_tail(_dir(state) / "kubelet.log", 40)
