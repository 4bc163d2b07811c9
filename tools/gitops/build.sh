#!/usr/bin/env bash
# Build the GitOps health checkers of this Go module into a cache keyed by a hash of its files:
#   kstatus        sigs.k8s.io/cli-utils' status.Compute on one object (what Flux and kpt use)
#   argocd-health  an Argo CD health script run in gopher-lua, set up as Argo CD sets it up
#   ${LOKIFI_GITOPS_TOOLS_CACHE:-~/.cache/lokifi-storage/gitops}/<hash>/{kstatus,argocd-health}
# Skips the build when the binaries are already there; builds into a temporary folder and
# renames it into place, so an interrupted build never leaves a half-filled cache behind. A cold
# build (module download and compile) takes under a minute.
# Prints the folder holding both binaries on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
digest="$(cat "$here/go.mod" "$here/go.sum" "$here"/*/main.go | sha256sum | cut -c1-12)"
cache_root="${LOKIFI_GITOPS_TOOLS_CACHE:-$HOME/.cache/lokifi-storage/gitops}"
dest="$cache_root/$digest"
tools=(kstatus argocd-health)

if [[ -x "$dest/kstatus" && -x "$dest/argocd-health" ]]; then
    echo "GitOps health checkers cached in $dest" >&2
    echo "$dest"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        echo "go is not installed: it is needed once to build the GitOps health checkers" >&2
        exit 1
    fi
fi

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build-$digest.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

start=$(date +%s)
for tool in "${tools[@]}"; do
    (
        cd "$here"
        CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
            -o "$tmp/$tool" "./$tool"
    )
    [[ -x "$tmp/$tool" ]] || { echo "build produced no $tool binary" >&2; exit 1; }
done
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "built GitOps health checkers in $(( $(date +%s) - start ))s into $dest" >&2
echo "$dest"
