# Two commands for a fresh machine: `make run` (the app with demo data, no services needed) and
# `make test` (the whole suite against the machine's PostgreSQL and Redis).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/*.txt | sha256sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/medlmm
TEST_REDIS_URL ?= redis://127.0.0.1:6379
PYTEST_ARGS ?=

.PHONY: run serve test lint install services messages totp clean

$(STAMP):
	@command -v $(PY) >/dev/null || PY=python3; test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/dev.txt -c requirements/constraints.txt
	rm -f $(VENV)/.installed-*; touch $@

# The Cornerstone3D viewer bundle (static/build/dicom/, git-ignored), rebuilt when its sources change.
VIEWER := static/build/dicom/viewer.js
$(VIEWER): frontend/package.json frontend/package-lock.json frontend/build.mjs $(wildcard frontend/src/*)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

install: $(STAMP) $(VIEWER)

## Start everything in one process on embedded defaults (SQLite, in-memory Celery and Channels).
run: install
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_models
	$(BIN)/python manage.py seed_reports
	$(BIN)/python manage.py run_embedded --host $(HOST) --port $(PORT)

## Production topology: needs DATABASE_URL and REDIS_URL (web + one Celery worker per queue).
serve: install
	$(BIN)/python -m config.launcher --host $(HOST) --port $(PORT)

## Today's TOTP code of a demo persona (embedded demo only): make totp USER=dr_a
totp: install
	@$(BIN)/python manage.py demo_totp $(USER)

services:
	@bash .ci/services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

## The whole suite, against real PostgreSQL and Redis (started if they are not running).
test: install services lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) REDIS_DB_BASE=10 DB_CONN_MAX_AGE=0 \
	  MEDLMM_VAR_DIR=$(CURDIR)/var/test $(BIN)/python -m pytest $(PYTEST_ARGS)

## Re-extract and compile translations (English is the translation; Japanese is the source).
messages: install
	$(BIN)/python manage.py makemessages -l en --ignore=.venv --ignore=var --ignore=node_modules --ignore=frontend \
	  --ignore=tests --ignore=bench --ignore=ml
	$(BIN)/python manage.py compilemessages -l en --ignore=.venv

clean:
	rm -rf var/test .pytest_cache .mypy_cache .ruff_cache
