#!/usr/bin/env bash
# Build the local control plane (kube-apiserver, kube-controller-manager, kubectl, etcd) from the
# Go module proxy through the wrapper module next to this script, into a cache keyed by version:
#   ${LOKIFI_K8S_CACHE:-~/.cache/lokifi-storage/k8s}/v1.35.4/
# `build.sh node` builds the node's binaries (kubelet, kube-scheduler) from the same module set
# into v1.35.4-node/; on top of a control-plane build they reuse Go's build cache.
# Skips the build when every binary is already there. Builds into a temporary folder and renames
# it into place, so an interrupted build never leaves a half-filled cache behind.
# Prints the cache folder on its last line.
set -euo pipefail

K8S_VERSION=v1.35.4
K8S_MINOR=35
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${LOKIFI_K8S_CACHE:-$HOME/.cache/lokifi-storage/k8s}"
case "${1:-control-plane}" in
    control-plane)
        what="control plane"
        BINARIES=(kube-apiserver kube-controller-manager kubectl etcd)
        PACKAGES=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
                  k8s.io/kubernetes/cmd/kubectl ./etcd)
        dest="$cache_root/$K8S_VERSION"
        ;;
    node)
        what="node"
        BINARIES=(kubelet kube-scheduler)
        PACKAGES=(k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler)
        dest="$cache_root/$K8S_VERSION-node"
        ;;
    *)
        echo "usage: $0 [control-plane|node]" >&2
        exit 2
        ;;
esac

complete=1
for bin in "${BINARIES[@]}"; do
    [[ -x "$dest/$bin" ]] || complete=0
done
if [[ $complete == 1 ]]; then
    echo "$what $K8S_VERSION cached in $dest" >&2
    echo "$dest"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        echo "go is not installed: it is needed once to build the $what" >&2
        exit 1
    fi
fi

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build-$K8S_VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

echo "building $what $K8S_VERSION (a cold control-plane build takes 7-25 minutes)..." >&2
start=$(date +%s)
(
    cd "$here"
    CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath \
        -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$K8S_MINOR" \
        -o "$tmp/" "${PACKAGES[@]}"
)
for bin in "${BINARIES[@]}"; do
    [[ -x "$tmp/$bin" ]] || { echo "build produced no $bin" >&2; exit 1; }
done
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "built $what $K8S_VERSION in $(( $(date +%s) - start ))s into $dest" >&2
echo "$dest"
