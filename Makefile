# Two set-up commands work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo` installs the base package only; `make test` adds the test extras.
BASE_STAMP := $(VENV)/.installed-base

.PHONY: demo test lint typecheck pytest soak docs docs-check bench system-deps clean dashboards

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The base install (what measure(), the endpoint, OTLP, host metrics and
# `jobmeter run` need), skipped when the test install above is already current.
$(BASE_STAMP): pyproject.toml | $(BIN)/python
	@if [ ! $(STAMP) -nt pyproject.toml ]; then \
		echo "$(BIN)/python -m pip install --quiet -e ."; \
		$(BIN)/python -m pip install --quiet -e .; \
	fi
	touch $(BASE_STAMP)

# Debian's Prometheus and Pushgateway for the tests that talk to real servers.
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v prometheus-pushgateway >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway; \
		else \
			echo "prometheus and prometheus-pushgateway are missing: run 'sudo make system-deps'" >&2; exit 1; \
		fi; \
	fi

# The wrapper serves :8000, and the demo's own metrics join it there (one endpoint per job).
demo: $(BASE_STAMP)
	$(BIN)/jobmeter run --quiet --name demo -- $(BIN)/python -m jobmeter.demo
	$(BIN)/jobmeter report --latest

# ruff, then the import layers and rules of docs/architecture.md (import-linter).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks dashboards docs/_cli.py
	$(BIN)/ruff format --check src tests benchmarks dashboards docs/_cli.py
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck docs-check pytest

# Long reliability tests (10 M measure() calls, a 10-minute run); not part of `make test`.
soak: $(STAMP)
	$(BIN)/pytest -m soak tests/reliability

# The documentation site (mkdocs.yml, docs/): `make docs` builds it into site/;
# docs-check builds it strictly (a broken link or a page left out of the nav fails).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$tmp/site"

# Regenerate dashboards/*.json from dashboards/generate.py; commit the result.
dashboards: $(STAMP)
	$(BIN)/python dashboards/generate.py

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .benchmarks
