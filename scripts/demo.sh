#!/usr/bin/env bash
# The main job on a fresh machine: install, start the local stack, apply the CRD, start the
# operator and let it reconcile the sample resource, then show what kubectl shows an admin.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
.venv/bin/python -m stack up
exec .venv/bin/python -m stack demo "$@"
