# The two commands a fresh machine needs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

PACKAGES := schemas bus outbound ingest runner notifier obs inferq

.PHONY: up test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(DEVSTAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP) $@

up: $(STAMP)
	$(BIN)/inferq up

# Lint and strict typing are part of the test run: CI fails on either.
test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(BIN)/ruff check $(PACKAGES) tests bench
	$(BIN)/mypy

bench: $(DEVSTAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
