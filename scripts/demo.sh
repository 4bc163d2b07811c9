#!/usr/bin/env bash
# The main job on a fresh machine: install, start the local stack, apply the CRD, start the
# operator and let it reconcile the sample resource, then show what kubectl shows an admin.
# `demo.sh --cluster` starts the stack's node too and installs the operator with its chart.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
if [[ " $* " == *" --cluster "* ]]; then
    .venv/bin/python -m stack up --node
else
    .venv/bin/python -m stack up
fi
exec .venv/bin/python -m stack demo "$@"
