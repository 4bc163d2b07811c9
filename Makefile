# The two commands of the README's quick start, and the smaller steps they are made of.
# Every target installs what it needs through the project's own scripts, so a fresh machine
# needs nothing but this repository.

PY := .venv/bin/python

.PHONY: demo demo-cluster test install stack-up stack-down node-up image lint typecheck unit crd generate faults

## Set up everything, start the local stack and the operator, reconcile the sample resource.
demo:
	bash scripts/demo.sh

## The same with the operator installed by its Helm chart as a Pod in the stack's node.
demo-cluster:
	bash scripts/demo.sh --cluster

## Run every check and test (what CI runs).
test:
	bash scripts/test.sh

install:
	bash scripts/install.sh

stack-up: install
	$(PY) -m stack up

stack-down:
	$(PY) -m stack down

## The stack plus its node (containerd, kubelet, scheduler): Pods run.
node-up: install
	$(PY) -m stack up --node

## The operator image as an OCI archive, built from Debian's packages and PyPI (no registry).
image: install
	$(PY) -m stack image

lint:
	.venv/bin/ruff check operator tests stack bench scripts faults
	.venv/bin/ruff format --check operator tests stack bench scripts faults

typecheck:
	.venv/bin/mypy

unit:
	.venv/bin/pytest tests/unit -q

crd:
	.venv/bin/lokifi-storage crd > crds/lokifistorage.yaml

## Regenerate every file made from the models or the chart: the CRD (and the chart's copy),
## docs/api.md and manifests/base. Unit and chart tests fail when one is stale.
generate: crd
	cp crds/lokifistorage.yaml charts/lokifi-storage-operator/crds/lokifistorage.yaml
	.venv/bin/lokifi-storage docs api > docs/api.md
	.venv/bin/python scripts/render_manifests.py

## The full fault campaigns against the local stack (long; `make test` runs a slice of each).
faults: stack-up
	$(PY) -m faults spec-fuzz --count 500 --seed 1
	LOKIFI_OUTAGE_SECONDS=30 .venv/bin/pytest tests/e2e/test_outages.py -s -q
	LOKIFI_KILLS=140 LOKIFI_KILL_ROWS=1000000 LOKIFI_KILL_TIMEOUT=14400 \
		.venv/bin/pytest tests/e2e/test_kill_campaign.py -s -q
	LOKIFI_LEADER_ROUNDS=20 LOKIFI_LEADER_ROWS=50000 .venv/bin/pytest tests/e2e/test_two_operators.py -s -q
