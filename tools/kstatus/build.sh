#!/usr/bin/env bash
# Build the kstatus checker (main.go: sigs.k8s.io/cli-utils' status.Compute on one object read
# from stdin) into a cache keyed by the cli-utils version and a hash of this module's files:
#   ${LOKIFI_KSTATUS_CACHE:-~/.cache/lokifi-storage/kstatus}/<cli-utils version>-<hash>/kstatus
# Skips the build when the binary is already there; builds into a temporary folder and renames it
# into place, so an interrupted build never leaves a half-filled cache behind. A cold build
# (module download and compile) takes under a minute.
# Prints the binary's path on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1 == "sigs.k8s.io/cli-utils" {print $2}' "$here/go.mod")"
[[ -n "$version" ]] || { echo "no sigs.k8s.io/cli-utils requirement in $here/go.mod" >&2; exit 1; }
digest="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)"
cache_root="${LOKIFI_KSTATUS_CACHE:-$HOME/.cache/lokifi-storage/kstatus}"
dest="$cache_root/$version-$digest"

if [[ -x "$dest/kstatus" ]]; then
    echo "kstatus checker (cli-utils $version) cached in $dest" >&2
    echo "$dest/kstatus"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        echo "go is not installed: it is needed once to build the kstatus checker" >&2
        exit 1
    fi
fi

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

start=$(date +%s)
(
    cd "$here"
    CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
        -o "$tmp/kstatus" .
)
[[ -x "$tmp/kstatus" ]] || { echo "build produced no kstatus binary" >&2; exit 1; }
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "built kstatus checker (cli-utils $version) in $(( $(date +%s) - start ))s into $dest" >&2
echo "$dest/kstatus"
