# Targets a CDK user expects. Every target installs what it needs first (venv, pip packages, the CDK CLI).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# checkov pins an older boto3/botocore than the project: it lives in its own environment (requirements-checkov.txt).
CHECKOV_VENV := .venv-checkov
CDK := npx --no-install cdk
PYTEST_WORKERS ?= 2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup local synth rehearse start status history restore-image approve reject bench test lint check diff deploy destroy snapshot-update clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed $(CHECKOV_VENV)/.installed node_modules/.installed

## The main job on the local default: synthesize the whole pipeline offline (no account, no Docker),
## then rehearse a full deployment locally (the real ASL and handlers against an emulated AWS).
local: synth rehearse

SCENARIO ?= push-deploys-every-stage
rehearse: setup
	$(PY) -m rehearsal --scenario $(SCENARIO)

synth: setup
	$(CDK) synth --quiet
	@echo "Templates written to cdk.out/:"; ls -1 cdk.out/*.template.json

lint: setup
	$(PY) -m pip check
	$(CHECKOV_VENV)/bin/python -m pip check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app.py stacks lambdas rehearsal benchmarks scripts tests

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q --durations=15

## What CI runs (.ci/run) and the README's test command.
check: lint test

## Ours against the shell-script baseline (README "Performance"), side by side (BENCH_ARGS=--quick for the small sizes).
bench: setup
	$(PY) -m benchmarks $(BENCH_ARGS)

snapshot-update: setup
	$(PY) -m pytest -q tests/infra/test_snapshot.py --snapshot-update

## A manual run: make start ACTION=deploy COMMIT=… [STAGES=a,b] [DRY_RUN=1] [PRINT=1] [REGION=…] [STACK=…]
start: setup
	$(PY) -m scripts.start_deployment $(ACTION) \
	  $(if $(COMMIT),--commit $(COMMIT)) $(if $(AMI),--ami $(AMI)) $(if $(TO),--to $(TO)) \
	  $(if $(STAGES),--stages $(STAGES)) $(if $(DRY_RUN),--dry-run) $(if $(PRINT),--print) \
	  $(if $(REGION),--region $(REGION)) $(if $(STACK),--stack $(STACK))

## What runs where, what deploys, is locked, queued or waits for approval: make status [JSON=1] [REGION=…] [STACK=…]
status: setup
	$(PY) -m scripts.status status $(if $(JSON),--json) $(if $(REGION),--region $(REGION)) $(if $(STACK),--stack $(STACK))

## The last deployments, their outcome, duration and stages: make history [LAST=10] [JSON=1] [REGION=…] [STACK=…]
history: setup
	$(PY) -m scripts.status history $(if $(LAST),--last $(LAST)) $(if $(JSON),--json) \
	  $(if $(REGION),--region $(REGION)) $(if $(STACK),--stack $(STACK))

## Answer a pending approval under your own credentials: make approve EXECUTION=… [STAGE=prod] [REASON=…]
approve: setup
	@test -n "$(EXECUTION)" || { echo "usage: make approve EXECUTION=<execution ARN or name> [STAGE=...] [REASON=...]"; exit 2; }
	$(PY) -m scripts.approval approve "$(EXECUTION)" $(if $(STAGE),--stage "$(STAGE)") $(if $(REASON),--reason "$(REASON)")

reject: setup
	@test -n "$(EXECUTION)" || { echo "usage: make reject EXECUTION=<execution ARN or name> [STAGE=...] [REASON=...]"; exit 2; }
	$(PY) -m scripts.approval reject "$(EXECUTION)" $(if $(STAGE),--stage "$(STAGE)") $(if $(REASON),--reason "$(REASON)")

## Undo a prune: make restore-image AMI=ami-… [REGION=…] [DRY_RUN=1] (README "Undoing a prune")
restore-image: setup
	@test -n "$(AMI)" || { echo "usage: make restore-image AMI=ami-... [REGION=eu-west-1] [DRY_RUN=1]"; exit 2; }
	$(PY) -m scripts.restore_image $(AMI) $(if $(REGION),--region $(REGION)) $(if $(DRY_RUN),--dry-run)

diff: setup
	$(CDK) diff

deploy: setup
	$(CDK) deploy --require-approval broadening

## Remove the stack; what lives outside CloudFormation (AMIs, snapshots, versions, groups): docs/runbook.md
destroy: setup
	$(CDK) destroy

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
