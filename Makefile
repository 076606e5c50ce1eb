# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
export LEDGER_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test lint bench venv dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Strict editable installs link each module file: adding or removing one (a directory's mtime changes)
# needs a reinstall.
PACKAGE_DIRS := $(shell find src projections api -type d -not -name __pycache__ 2>/dev/null)

$(STAMP_DEV): pyproject.toml $(PACKAGE_DIRS) | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	touch $@ $(STAMP_RUN)

venv: $(STAMP_RUN)
dev: $(STAMP_DEV)

run: $(STAMP_RUN)
	$(BIN)/ledger demo --if-empty --scale small
	$(BIN)/ledger serve

test: $(STAMP_DEV)
	$(BIN)/pytest -q

lint: $(STAMP_DEV)
	$(BIN)/ruff check src projections api tests benchmarks
	$(BIN)/ruff format --check src projections api tests benchmarks
	$(BIN)/mypy

bench: $(STAMP_DEV)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info
