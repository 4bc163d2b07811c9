#!/usr/bin/env bash
# Helm at the version this project pins, built once from the Go module proxy (scripts/go-tool.sh).
# Tests and humans call this instead of a helm on PATH: `scripts/helm.sh lint charts/...`.
set -euo pipefail
HELM_VERSION=v4.3.1
helm="$(bash "$(dirname "$0")/go-tool.sh" helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" | tail -1)"
exec "$helm" "$@"
