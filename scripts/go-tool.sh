#!/usr/bin/env bash
# Build one Go command from the Go module proxy at a pinned version, once, into a cache keyed by
# name and version, and print the binary's path on the last line:
#   scripts/go-tool.sh helm helm.sh/helm/v4/cmd/helm v4.3.1
#   -> ${LOKIFI_TOOLS_CACHE:-~/.cache/lokifi-storage/tools}/helm-v4.3.1/helm
# The module's checksums are verified against sum.golang.org by `go install`. Builds into a
# temporary folder and renames it into place, so an interrupted build leaves no half-filled cache.
set -euo pipefail

name="$1" package="$2" version="$3"
cache_root="${LOKIFI_TOOLS_CACHE:-$HOME/.cache/lokifi-storage/tools}"
dest="$cache_root/$name-$version"

if [[ -x "$dest/$name" ]]; then
    echo "$dest/$name"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        echo "go is not installed: it is needed once to build $name" >&2
        exit 1
    fi
fi

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build-$name-$version.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
echo "building $name $version from the Go module proxy..." >&2
start=$(date +%s)
CGO_ENABLED=0 GOWORK=off GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "$package@$version"
[[ -x "$tmp/$name" ]] || { echo "the build produced no $name" >&2; exit 1; }
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "built $name $version in $(( $(date +%s) - start ))s into $dest" >&2
echo "$dest/$name"
