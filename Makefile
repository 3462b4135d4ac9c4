# ibdata: `make demo` runs the main job on the embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.synced

.DEFAULT_GOAL := help
.PHONY: help install init demo admin test test-ib-async lint format lock sim services up down clean uv browser bytecode

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

uv: ## install uv (through pip) if it is missing
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

$(STAMP): requirements.lock pyproject.toml
	@$(MAKE) --no-print-directory uv
	@[ -x $(PY) ] || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	@$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.lock
	@$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@$(MAKE) --no-print-directory bytecode
	@touch $(STAMP)

# Every process (a command, a worker, the simulator, each of the tests' subprocesses) reads the
# compiled modules instead of compiling them again: with PYTHONDONTWRITEBYTECODE set (as on this
# machine, and in many images) nothing would ever be cached, and each start costs ~5 s of CPU.
bytecode: ## compile the project's modules (the locked packages are compiled when installed)
	@$(PY) -m compileall -q -j 0 manage.py ibdata_project fetcher backtests ibsim ibdata >/dev/null

install: $(STAMP) ## create .venv and install exactly the locked environment

init: $(STAMP) ## make this installation's secret key and Flower password once (DATA_DIR, owner-only)
	@$(PY) manage.py init_secrets

demo: $(STAMP) init bytecode ## run the main job on the embedded defaults (simulator, SQLite and catalog in data/demo)
	@$(PY) manage.py demo

admin: $(STAMP) ## the admin on the demo's store at http://127.0.0.1:8000/admin/ (asks for a first user)
	@$(PY) manage.py demo --admin

browser: ## Debian's chromium for the browser tests, installed when missing (apt-get)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
	  echo "chromium could not be installed: the browser tests will be skipped"

test: $(STAMP) init browser bytecode ## the full suite against PostgreSQL and Redis (scripts/services.sh starts them), then test-ib-async
	@bash scripts/services.sh
	@DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ibdata} \
	 REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	 $(PY) -m pytest --durations=25 $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-ib-async

# The tests of the gateway connection, of a run's execution and of the fetch command, once more
# through ib_async (the suite above speaks ib_insync, the default IBKR_CLIENT). Left out, as they
# exercise our services rather than the client (the same calls on either): the year-scale runs
# through Redis and PostgreSQL outages, beat and Flower, and the long runs of recovery, alerts,
# pacing without Redis, splits and a killed second gateway: make test stays under 30 minutes.
EXEC := tests/fetcher/execution
CLIENT_TESTS := tests/fetcher/ibkr $(EXEC) tests/fetcher/management/test_fetch_command.py \
  --ignore=$(EXEC)/test_faults.py --ignore=$(EXEC)/test_scale.py \
  --ignore=$(EXEC)/test_scheduled_update.py --ignore=$(EXEC)/test_flower.py \
  --ignore=$(EXEC)/test_split_update.py --ignore=$(EXEC)/test_gateways.py \
  --deselect=$(EXEC)/test_worker.py::test_two_processes_without_a_shared_pacer_break_the_gateway_rules \
  --deselect=$(EXEC)/test_worker.py::test_following_a_run_whose_worker_died_ends_with_a_clear_error \
  --deselect=$(EXEC)/test_worker.py::test_a_killed_worker_resumes_the_run_on_restart \
  --deselect=$(EXEC)/test_worker_operation.py::test_workers_started_during_a_run_leave_it_to_the_worker_executing_it \
  --deselect=$(EXEC)/test_worker_operation.py::test_a_gateway_kept_down_is_mailed_once_and_once_when_back

test-ib-async: $(STAMP) ## the gateway and execution tests again with IBKR_CLIENT=ib_async
	@bash scripts/services.sh
	@DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ibdata} \
	 REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	 IBKR_CLIENT=ib_async $(PY) -m pytest -q $(CLIENT_TESTS)

lint: $(STAMP) ## ruff lint and format check, and the architecture contract (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lock: uv ## regenerate requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --universal \
	  --python-version 3.11 --quiet -o requirements.lock

sim: $(STAMP) ## run the gateway simulator on 127.0.0.1:7497 (python -m ibsim --help)
	$(PY) -m ibsim --port 7497

up: $(STAMP) init ## start web (gunicorn), both workers, beat and Flower on local PostgreSQL and Redis (Procfile)
	@bash scripts/services.sh
	@$(PY) scripts/stack.py up

down: ## stop everything `make up` started (nothing up: says so, exits 0)
	@if [ -x $(PY) ]; then $(PY) scripts/stack.py down; else echo "ibdata is not up: nothing to stop."; fi

services: ## start PostgreSQL and Redis on loopback if they are installed and stopped
	@bash scripts/services.sh

clean: ## remove the virtualenv and caches (keeps data/ and logs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
