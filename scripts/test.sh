#!/usr/bin/env bash
# Every check and test of the project, on a fresh machine: install, start the local stack
# (PostgreSQL primary+replica, Redis Cluster, S3 server, kube-apiserver+etcd, and the node:
# containerd + kubelet + scheduler), lint, type-check, then pytest over unit, integration, e2e
# and node tests against those real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
.venv/bin/python -m stack up --node

echo "== ruff"
.venv/bin/ruff check operator tests stack bench scripts faults
.venv/bin/ruff format --check operator tests stack bench scripts faults
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest tests "$@"
