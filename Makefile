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

.PHONY: help run reset-demo token verify-totals verify-audit test test-fast browser-deps lint typecheck validate build build-x86_64 smoke bench bench-quick lock clean
.PHONY: backfill backfill-contacts invoke bench-analytics inbound-email api-docs archive

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

run: $(VENV)/.installed ## the local API, WebSocket API and demo shop on an embedded PostgreSQL, with demo data: PORT=3000, WS_PORT=PORT+1, MERCHANT_PORT=PORT+2, SUPPORT_DATA_DIR=
	@$(PY) -m local.run

reset-demo: $(VENV)/.installed ## drop the make-run database and load the demo data afresh (a running make run keeps serving)
	@$(PY) -m local.run --reset

token: $(VENV)/.installed ## print a JWT for the local gateway: make token TENANT=<uuid> [ROLE=admin|agent AGENT=<uuid>] [TTL=3600]
	@$(PY) -m local.token $(if $(TENANT),--tenant "$(TENANT)") --role "$(or $(ROLE),admin)" $(if $(AGENT),--agent "$(AGENT)") $(if $(TTL),--expires-in "$(TTL)")

verify-totals: $(VENV)/.installed ## recount every running total and agent figure from the rows; REPAIR=1 mends differences
	$(PY) -m local.verify_totals $(if $(REPAIR),--repair) $(if $(TENANT),--tenant "$(TENANT)")

verify-audit: $(VENV)/.installed ## recompute every tenant's audit hash chain (TENANT=<uuid> for one) and report the first break of each
	$(PY) -m local.verify_audit $(if $(TENANT),--tenant "$(TENANT)")

backfill: $(VENV)/.installed ## roll up days: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [TENANT=<uuid>] (make run's database)
	@$(PY) -m local.backfill --from "$(FROM)" --to "$(TO)" $(if $(TENANT),--tenant "$(TENANT)")

backfill-contacts: $(VENV)/.installed ## link tickets and chats that have no contact yet: make backfill-contacts [TENANT=<uuid>] [BATCH=500] (make run's database)
	@$(PY) -m local.backfill_contacts $(if $(TENANT),--tenant "$(TENANT)") $(if $(BATCH),--batch-size "$(BATCH)")

inbound-email: $(VENV)/.installed ## feed a MIME file to the email function as SES would: make inbound-email FILE=<.eml> TO=<address> (a running make run's S3 and database)
	@$(PY) -m local.inbound_email "$(FILE)" --to "$(TO)"

archive: $(VENV)/.installed ## run the retention step now against a running make run (LIST=1: list the archive objects)
	@$(PY) -m local.archive $(if $(LIST),--list)

invoke: $(VENV)/.installed ## run a template function in-process: make invoke FUNCTION=<logical id> EVENT=<file>
	@$(PY) -m local.invoke "$(FUNCTION)" "$(EVENT)"

api-docs: $(VENV)/.installed ## regenerate docs/openapi.json (and its copy in the layer) and docs/asyncapi.yaml from the code
	$(PY) -m local.openapi --write
	$(PY) -m local.asyncapi --write

test: $(VENV)/.installed $(SAM_VENV)/.installed browser-deps lint validate build build-x86_64 ## the whole suite: lint, template checks, both builds, all tests
	SUPPORT_BUILDS_FRESH=1 $(PY) -m pytest

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

validate: $(SAM_VENV)/.installed ## sam validate --lint and cfn-lint with .cfnlintrc (offline; zero findings)
	$(SAM) validate --lint
	$(SAM_VENV)/bin/cfn-lint

build: $(VENV)/.installed $(SAM_VENV)/.installed ## sam build for arm64 without Docker (aarch64 wheels), then the layer's size
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --parallel --cached
	@$(PY) -m local.layer_size .aws-sam/build

# The same stack for x86_64, into its own folder: tests/built imports these artifacts (not the source tree) and
# feeds them sample events on this x86_64 machine. A copy of the template with the other architecture and absolute
# code paths, built from a folder of its own: sam keeps its dependency cache under the folder it runs in, and one
# cache for both builds would make each throw away the other's.
X86_DIR := .aws-sam/x86_64
build-x86_64: $(VENV)/.installed $(SAM_VENV)/.installed ## sam build for x86_64 into .aws-sam/build-x86_64 (what tests/built runs)
	@mkdir -p $(X86_DIR)
	@sed -e 's/^    Architectures: \[arm64\]$$/    Architectures: [x86_64]/' \
	    -e 's/^      CompatibleArchitectures: \[arm64\]$$/      CompatibleArchitectures: [x86_64]/' \
	    -e 's/^      BuildArchitecture: arm64$$/      BuildArchitecture: x86_64/' \
	    -e 's#^\( *\)\(CodeUri\|ContentUri\): \([a-z]\)#\1\2: $(CURDIR)/\3#' template.yaml > $(X86_DIR)/template.yaml
	@test "$$(grep -c 'x86_64' $(X86_DIR)/template.yaml)" -ge 3 || { echo "template.yaml: no arm64 settings to switch" >&2; exit 1; }
	cd $(X86_DIR) && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CURDIR)/$(SAM) build --template-file template.yaml \
	    --build-dir $(CURDIR)/.aws-sam/build-x86_64 --parallel --cached
	@$(PY) -m local.layer_size .aws-sam/build-x86_64

smoke: $(VENV)/.installed ## call a deployed API: make smoke URL=<HttpApiUrl> TOKEN=<access token> [WS_URL=<WebSocketUrl>]
	@test -n "$(URL)" -a -n "$(TOKEN)" || { echo "usage: make smoke URL=<http api url> TOKEN=<jwt> [WS_URL=<websocket url>]" >&2; exit 2; }
	@$(PY) -m local.smoke --url "$(URL)" --token "$(TOKEN)" $(if $(WS_URL),--ws-url "$(WS_URL)")

bench: $(VENV)/.installed ## benchmarks (see bench/README.md); figures go to bench/RESULTS.md
	$(PY) -m bench.tickets

bench-quick: $(VENV)/.installed ## the benchmarks on a 10,000-ticket tenant, 20 calls per case (its ratio target says FAIL: see docs/benchmarks.md)
	$(PY) -m bench.tickets --tickets 10000 --iterations 20 --import-runs 2 --no-import-profile

bench-analytics: $(VENV)/.installed ## the analytics benchmark: rollup, backfill, range summary, dashboard trends (bench/README.md)
	$(PY) -m bench.analytics $(if $(ARGS),$(ARGS))

lock: $(VENV)/.installed ## re-pin the layer's and the development environment's dependencies
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile --quiet --python-version $(PYTHON_MINOR) --python-platform x86_64-manylinux_2_28 layers/support/pyproject.toml -o layers/support/requirements.txt
	$(VENV)/bin/uv pip compile --quiet --universal --python-version $(PYTHON_MINOR) requirements-dev.in -o requirements-dev.lock

clean: ## remove both environments, build output, .local/ (make-run and bench data, the local signing key), the browser tests' node_modules and screenshots
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .local .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules tests/browser/artifacts
