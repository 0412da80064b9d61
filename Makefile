# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
# The interpreter the venv is made from: the system's (Debian's /usr/bin/python3) when it is 3.11 or
# newer and can make a venv, else the first python3 on PATH. Distribution builds, like the
# production image's python:3.11-slim, are compiled with profile-guided optimisation; a plain
# source build (pyenv's default) ran the router ~15 % and the bare loops ~40 % slower here
# (README, Performance). Another: `make clean install PYTHON=/path/to/python3`.
PYTHON ?= $(or $(shell for p in /usr/bin/python3 python3; do $$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done),python3)
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
