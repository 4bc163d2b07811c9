# The two commands of the README's quick start, and the smaller steps they are made of.
# Every target installs what it needs through the project's own scripts, so a fresh machine
# needs nothing but this repository.

PY := .venv/bin/python

.PHONY: demo test install stack-up stack-down lint typecheck unit crd

## Set up everything, start the local stack and the operator, reconcile the sample resource.
demo:
	bash scripts/demo.sh

## Run every check and test (what CI runs).
test:
	bash scripts/test.sh

install:
	bash scripts/install.sh

stack-up: install
	$(PY) -m stack up

stack-down:
	$(PY) -m stack down

lint:
	.venv/bin/ruff check operator tests stack bench
	.venv/bin/ruff format --check operator tests stack bench

typecheck:
	.venv/bin/mypy

unit:
	.venv/bin/pytest tests/unit -q

crd:
	.venv/bin/lokifi-storage crd > crds/lokifistorage.yaml
