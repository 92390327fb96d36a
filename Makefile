# Developer entry points. Every tool runs from .venv/bin, so nothing needs activating.
#
#   make install   create/refresh .venv from uv.lock (with the dev-services stand-ins) and the offline API docs assets
#   make run       start the whole service (embedded Postgres/Redis/Stripe/SMTP when not configured)
#                  e.g. make run ARGS=--no-demo
#   make test      lint, then the test suite (pytest options via PYTEST_ARGS)
#   make lint      ruff check, ruff format --check, mypy, import-linter (the layers)
#   make clean     delete .data (databases, mail, logs of the embedded services)
#   make bench     load benchmarks against a fresh production-configured stack, results in bench/results
#                  e.g. make bench ARGS=--quick, make bench ARGS="hot-ga seat-map"

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# uv cannot download interpreters here, so hand it an existing Python 3.11: python3.11 on PATH
# first (resolved to the real binary, not a pyenv shim), then pyenv's, then Debian's.
PYTHON ?= $(shell for p in python3.11 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.11*/bin/python3.11 /usr/bin/python3.11; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 11); print(sys.executable)' 2>/dev/null && break; done)
UV_VERSION := 0.13.9
UV = $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never

DOCS_ASSETS := api/docs-assets
# npm ci rewrites this file, so it doubles as the "assets are installed" stamp.
DOCS_STAMP := $(DOCS_ASSETS)/node_modules/.package-lock.json

ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install python-deps run test lint clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

install: python-deps $(DOCS_STAMP)

python-deps:
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.11 not found (looked for python3.11 on PATH, pyenv, /usr/bin)" >&2; exit 1; fi
	@if ! $(UV) --version >/dev/null 2>&1; then \
		echo "Installing uv $(UV_VERSION) into $(PYTHON)"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" \
		|| $(PYTHON) -m pip install --quiet --disable-pip-version-check --user --break-system-packages "uv==$(UV_VERSION)"; \
	fi
	$(UV) sync --frozen --extra dev-services --python "$(PYTHON)"

$(DOCS_STAMP): $(DOCS_ASSETS)/package.json $(DOCS_ASSETS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for the API docs assets (apt-get install npm)" >&2; exit 1; }
	npm ci --prefix $(DOCS_ASSETS) --ignore-scripts --omit=peer --no-audit --no-fund
	@touch $@

run: install
	.venv/bin/ticketing run $(ARGS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy .
	.venv/bin/lint-imports

test: install
	$(MAKE) lint
	.venv/bin/pytest -n 2 $(PYTEST_ARGS)

clean:
	rm -rf .data

.PHONY: bench
# hold-latency drives the service with wrk, an independent load generator (Debian's package).
bench: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && { apt-get install -y -qq --no-install-recommends wrk || { apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk; }; } >/dev/null; } || echo "wrk not installed: hold-latency will be reported as failed (apt-get install wrk)" >&2
	.venv/bin/python -m bench $(ARGS)
