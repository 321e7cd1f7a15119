# The README's commands. Each does its own set-up (venv, pip; the stack script brings Kafka/Redis).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
STACK := bash deploy/local/stack.sh
PYTEST_ARGS ?=

.PHONY: demo test test-long lint unit up down status setup clean docs

demo: $(INSTALLED)  ## the stack, both invalidators, the example orders service, a live summary
	eval "$$($(STACK) up $(if $(findstring --secure,$(DEMO_ARGS)),--secure,$(if $(findstring mirrored,$(DEMO_ARGS)),--mirrored)))" && $(BIN)/python -m demo $(DEMO_ARGS)

test: lint $(INSTALLED)  ## ruff, mypy --strict, then every test against the real services but the long ones
	$(BIN)/python -m pytest -m "not long" $(PYTEST_ARGS)

test-long: $(INSTALLED)  ## the tests marked long (extra clusters, broker restarts; each at its short size)
	$(BIN)/python -m pytest -m long $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(INSTALLED)  ## the tests that need no service
	$(BIN)/python -m pytest tests/unit tests/contract $(PYTEST_ARGS)

up:
	$(STACK) up
down:
	$(STACK) down
status:
	$(STACK) status

setup: $(INSTALLED)
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

clean:
	for profile in --mirrored --debezium --secure ""; do $(STACK) down $$profile --purge || exit 1; done
	rm -rf $(VENV)

docs: $(INSTALLED)  ## regenerate docs/ of the example domain from the catalogue
	for format in markdown:catalogue.md json:catalogue.json asyncapi:asyncapi.json; do \
	  INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19092 INVALIDATOR_CATALOGUE=contracts.example_orders:CATALOGUE \
	  $(BIN)/python -m invalidator catalogue export \
	    --format $${format%%:*} --title "Example domain: orders" --output docs/$${format#*:} || exit 1; \
	done

.PHONY: stale-check stale-bench
stale-check: $(INSTALLED)  ## the short stale-data harness (CI)
	eval "$$($(STACK) up)" && $(BIN)/python -m bench.stale --short
stale-bench: $(INSTALLED)  ## the full stale-data harness (>= 200,000 reads)
	eval "$$($(STACK) up)" && $(BIN)/python -m bench.stale --reads 200000

.PHONY: bench bench-check bench-soak bench-report
BENCH_INSTALLED := $(VENV)/.installed-bench
$(BENCH_INSTALLED): $(INSTALLED) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_INSTALLED)
bench: $(BENCH_INSTALLED)  ## every figure, full size -> bench/results, docs/performance.md, README table
	eval "$$($(STACK) up --mirrored)" && $(BIN)/python -m bench
bench-check: $(INSTALLED)  ## the short suite (CI): fails only on errors or lost purges
	eval "$$($(STACK) up --mirrored)" && $(BIN)/python -m bench --short
bench-soak: $(BENCH_INSTALLED)  ## both invalidators' RSS under load for 10 minutes -> bench/results/soak.json
	eval "$$($(STACK) up)" && $(BIN)/python -m bench --soak && $(BIN)/python -m bench.report
bench-report: $(BENCH_INSTALLED)  ## regenerate docs/performance.md and the README table from bench/results
	$(BIN)/python -m bench.report

.PHONY: faults
faults: $(INSTALLED)  ## the fault suite at full size (make test runs its short version) -> .faults/outcomes.jsonl
	rm -f .faults/outcomes.jsonl
	eval "$$($(STACK) up)" && INVALIDATOR_FAULTS=long $(BIN)/python -m pytest tests/faults $(PYTEST_ARGS) -p no:cacheprovider -ra
	$(BIN)/python -m tests.faults.accounting

.PHONY: watchdog-soak
watchdog-soak: $(INSTALLED)  ## the watchdog's healthy run at 100,000 events (make test runs 3,000)
	eval "$$($(STACK) up)" && INVALIDATOR_WATCHDOG_SOAK_EVENTS=100000 $(BIN)/python -m pytest tests/integration/test_watchdog_soak.py $(PYTEST_ARGS) -p no:cacheprovider -ra

.PHONY: containers-check
containers-check: $(INSTALLED)  ## local images, then tests on containers, docker-compose.yml, deploy/Dockerfile (podman; not part of test)
	PYTHON_BIN=$(CURDIR)/$(BIN)/python PYTEST_ARGS="$(PYTEST_ARGS)" bash deploy/containers/check.sh $(CHECK_STEPS)
