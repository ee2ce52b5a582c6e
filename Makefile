# One target per habit. `make run` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_MINOR := 3.13
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help run reset-demo token verify-totals test test-fast browser-deps lint typecheck validate build bench bench-quick lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# Set-up output goes to stderr, so `make token` prints the token alone on stdout even on a fresh clone.
$(VENV)/.installed: requirements-dev.lock layers/support/requirements.txt layers/support/pyproject.toml
	@echo "Setting up $(VENV) (Python $(PYTHON_MINOR)) from requirements-dev.lock ..." >&2
	@test -x $(PY) || "$$(local/find_python.sh $(PYTHON_MINOR))" -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -r requirements-dev.lock >&2
	@$(PY) -m pip install --quiet --no-deps -e layers/support >&2
	@touch $@

$(SAM_VENV)/.installed:
	@echo "Setting up $(SAM_VENV) with aws-sam-cli $(SAM_CLI_VERSION) ..." >&2
	@test -x $(SAM_VENV)/bin/python || "$$(local/find_python.sh $(PYTHON_MINOR))" -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION) >&2
	@touch $@

run: $(VENV)/.installed ## the local API on an embedded PostgreSQL, with demo data (PORT=, SUPPORT_DATA_DIR=)
	@$(PY) -m local.run

reset-demo: $(VENV)/.installed ## drop the make-run database and load the demo data afresh (a running make run keeps serving)
	@$(PY) -m local.run --reset

token: $(VENV)/.installed ## print a JWT for the local gateway: make token TENANT=<uuid> [ROLE=admin|agent AGENT=<uuid>] [TTL=3600]
	@$(PY) -m local.token $(if $(TENANT),--tenant "$(TENANT)") --role "$(or $(ROLE),admin)" $(if $(AGENT),--agent "$(AGENT)") $(if $(TTL),--expires-in "$(TTL)")

verify-totals: $(VENV)/.installed ## recount every running total and agent figure from the rows; REPAIR=1 mends differences
	$(PY) -m local.verify_totals $(if $(REPAIR),--repair) $(if $(TENANT),--tenant "$(TENANT)")

test: $(VENV)/.installed $(SAM_VENV)/.installed browser-deps lint validate build ## the whole suite: lint, template checks, sam build, all tests
	$(PY) -m pytest

test-fast: $(VENV)/.installed browser-deps ## the tests only
	$(PY) -m pytest

# The browser tests (tests/browser/) drive Debian's Chromium through its chromedriver; nothing downloads a
# browser build. As root on Debian (CI) the packages are installed; elsewhere this fails and says how.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
BROWSER_NODE_MODULES := tests/browser/node_modules/.package-lock.json

browser-deps: $(BROWSER_NODE_MODULES) ## Debian's chromium + chromium-driver (installed as root on Debian) and axe-core (npm ci)
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-driver for the browser tests ..." >&2; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2; \
	else \
		echo "The browser tests need $(CHROMIUM) and $(CHROMEDRIVER) (Debian's chromium and chromium-driver)." >&2; \
		echo "Install them with: sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2; \
		exit 1; \
	fi

$(BROWSER_NODE_MODULES): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "The browser tests need npm (Node.js) for axe-core: apt-get install -y npm" >&2; exit 1; }
	@echo "Installing axe-core for the browser tests (npm ci in tests/browser/) ..." >&2
	@cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >&2
	@touch $@

lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

validate: $(SAM_VENV)/.installed ## sam validate --lint (offline)
	$(SAM) validate --lint

build: $(SAM_VENV)/.installed ## sam build without Docker, with the runtime's Python on PATH
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --parallel --cached

bench: $(VENV)/.installed ## benchmarks (see bench/README.md); figures go to bench/RESULTS.md
	$(PY) -m bench.tickets

bench-quick: $(VENV)/.installed ## the benchmarks on a 10,000-ticket tenant, 20 calls per case (its ratio target says FAIL: see README)
	$(PY) -m bench.tickets --tickets 10000 --iterations 20

lock: $(VENV)/.installed ## re-pin the layer's and the development environment's dependencies
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile --quiet --python-version $(PYTHON_MINOR) --python-platform x86_64-manylinux_2_28 layers/support/pyproject.toml -o layers/support/requirements.txt
	$(VENV)/bin/uv pip compile --quiet --universal --python-version $(PYTHON_MINOR) requirements-dev.in -o requirements-dev.lock

clean: ## remove both environments, build output, .local/ (make-run and bench data, the local signing key), the browser tests' node_modules and screenshots
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .local .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules tests/browser/artifacts
