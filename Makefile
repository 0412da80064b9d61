# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate bench docs install clean help

help:
	@echo "make run      start broker, migrations, demo seed and the three services (Ctrl-C stops)"
	@echo "make test     install and run the whole test suite"
	@echo "make lint     ruff and mypy"
	@echo "make migrate  apply the database migrations (DATABASE_URL)"
	@echo "make bench    run the benchmarks; writes bench/results/latest.json"
	@echo "make docs     regenerate the README's settings table from shared/settings.py"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ticketctl dev run

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services migrations tests bench

migrate: $(STAMP)
	$(BIN)/ticketctl migrate

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

docs: $(STAMP)
	$(BIN)/python -m shared.settings_doc --write README.md
