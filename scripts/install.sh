#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian 12 machine (run as root), and nothing
# twice: Debian packages for the local stack, the Python venv with the project and its dev tools,
# and the Kubernetes control plane and the GitOps health checkers built once from the Go module proxy
# (cached by version).
# Safe to run again: each step checks first and prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    postgresql-15 postgresql-15-partman postgresql-client-15
    redis-server redis-tools
    openssl
    # The stack's node (`python -m stack up --node`): container runtime, Pod network, the
    # pause image's compiler and the operator image's root filesystem builder.
    containerd runc containernetworking-plugins iproute2 gcc libc6-dev mmdebstrap
    # promtool, for the tests of the shipped alerting rules (its server is not used).
    prometheus
    faketime  # libfaketime: the retention tests run a job on a really fast clock
    # The compiled SQLite reader of `migrate sqlite` (operator/lokifi_storage/clients/
    # _sqlite_copy.c): Python's and SQLite's headers (gcc is above).
    python3-dev libsqlite3-dev
)

step_start=0
step() { step_start=$(date +%s); echo "== $*"; }
done_step() { echo "   ($(( $(date +%s) - step_start ))s)"; }
total_start=$(date +%s)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# --- Debian packages ---------------------------------------------------------------------------
step "Debian packages: ${APT_PACKAGES[*]}"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done
if (( ${#missing[@]} )); then
    # Update the package lists only when one of the missing packages is not known yet.
    for pkg in "${missing[@]}"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            as_root apt-get update -qq
            break
        fi
    done
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    echo "   installed: ${missing[*]}"
else
    echo "   already installed"
fi
# Debian's own postgresql@15-main (5432) and redis-server (6379) may run; the stack uses other
# ports, so they are left alone. `prometheus` is here for its promtool, which tests the shipped
# alerting rules (tests/chart/test_alert_rules.py); its server is not used.
done_step

# --- Python venv ---------------------------------------------------------------------------------
step "Python venv .venv with the project and its dev tools"
python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
            python_bin="$candidate"
            break
        fi
    done
fi
if [[ ! -x .venv/bin/python ]]; then
    [[ -n "$python_bin" ]] || { echo "Python >= 3.11 not found" >&2; exit 1; }
    "$python_bin" -m venv .venv
fi
# The stamp covers the C source too: a change to it rebuilds the extension (about a second).
stamp=".venv/.installed-$(cat pyproject.toml setup.py operator/lokifi_storage/clients/*.c \
    | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]] || ! compgen -G 'operator/lokifi_storage/clients/_sqlite_copy*.so' >/dev/null
then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    # setup.py builds it as optional (the Dockerfile's fallback); here its headers were
    # installed above, so a failed build is an error, not a quietly slower migration.
    .venv/bin/python -c 'import lokifi_storage.clients._sqlite_copy' \
        || { echo "the compiled SQLite reader did not build (see pip's output above)" >&2; exit 1; }
    rm -f .venv/.installed-*
    touch "$stamp"
    echo "   installed the project into .venv"
else
    echo "   up to date"
fi
done_step

# --- Kubernetes control plane ----------------------------------------------------------------------
step "Kubernetes control plane (kube-apiserver, kube-controller-manager, kubectl, etcd)"
bash stack/k8s/build.sh >/dev/null
done_step

# --- The node's kubelet and kube-scheduler ------------------------------------------------------------
# Same Go module set as the control plane: about a minute on top of its build cache.
step "Kubernetes node (kubelet, kube-scheduler)"
bash stack/k8s/build.sh node >/dev/null
done_step

# --- GitOps health checkers ----------------------------------------------------------------------
step "GitOps health checkers (kstatus and Argo CD's gopher-lua, for the GitOps e2e test)"
bash tools/gitops/build.sh >/dev/null
done_step

# --- Helm ------------------------------------------------------------------------------------------
# Lints and renders the chart in the tests (scripts/helm.sh pins the version).
step "Helm"
bash scripts/helm.sh version --short
done_step

# --- kubectl plugin ----------------------------------------------------------------------------
# `kubectl lks ...` runs the first `kubectl-lks` on PATH: the venv has it (a console script of the
# project); link it where kubectl looks when PATH does not include .venv/bin.
step "kubectl plugin kubectl-lks"
plugin_dir="${LOKIFI_PLUGIN_DIR:-$HOME/.local/bin}"
mkdir -p "$plugin_dir"
ln -sf "$(pwd)/.venv/bin/kubectl-lks" "$plugin_dir/kubectl-lks"
echo "   $plugin_dir/kubectl-lks -> .venv/bin/kubectl-lks (put $plugin_dir on PATH)"
done_step

echo "== install done in $(( $(date +%s) - total_start ))s"
