# One entry point for people and CI. `make test` builds .venv when missing, installs the project
# with its extras, and runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test check lint bench clean meltano demo readme pyairbyte snowflake snowflake-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sandbox,dev]'
	touch $(STAMP)

install: $(STAMP)

# Meltano gets a venv of its own (.venv-meltano), not a place in .venv: it is an application with
# its own pinned dependency tree (SQLAlchemy, alembic, structlog, ...) and installs every plugin,
# ours included, into a separate venv under .meltano/ anyway. Kept apart, a Meltano upgrade cannot
# break the connectors' resolution against singer-sdk, nor the reverse, on a fresh machine or in CI.
# The end-to-end tests call `make meltano` too, so the pin lives here only.
MELTANO_VERSION := 4.4.1
MELTANO_VENV ?= .venv-meltano
MELTANO_STAMP := $(MELTANO_VENV)/.installed-$(MELTANO_VERSION)

$(MELTANO_STAMP):
	test -x $(MELTANO_VENV)/bin/python || $(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet 'meltano==$(MELTANO_VERSION)'
	touch $(MELTANO_STAMP)

meltano: $(MELTANO_STAMP)

# PyAirbyte reads source-moovago into its DuckDB cache in the Airbyte e2e tests: an application
# with its own tree (airbyte-cdk, duckdb, pandas, ...), so a venv of its own, built once, like
# Meltano's. The tests call `make pyairbyte`.
PYAIRBYTE_VERSION := 0.71.3
PYAIRBYTE_VENV ?= .venv-pyairbyte
PYAIRBYTE_STAMP := $(PYAIRBYTE_VENV)/.installed-$(PYAIRBYTE_VERSION)

$(PYAIRBYTE_STAMP):
	test -x $(PYAIRBYTE_VENV)/bin/python || $(PYTHON) -m venv $(PYAIRBYTE_VENV)
	$(PYAIRBYTE_VENV)/bin/python -m pip install --quiet 'airbyte==$(PYAIRBYTE_VERSION)'
	touch $(PYAIRBYTE_STAMP)

pyairbyte: $(PYAIRBYTE_STAMP)

# The offline Snowflake lane: MeltanoLabs target-snowflake (it pins singer-sdk pre-releases, so
# it cannot share .venv) runs its table creation against a fakesnow server on 127.0.0.1.
# `make test` runs it too (about 15 s once the venv exists); `make snowflake-check` alone.
TARGET_SNOWFLAKE_VERSION := 0.20.4
FAKESNOW_VERSION := 0.12.1
SNOWFLAKE_VENV ?= .venv-snowflake
SNOWFLAKE_STAMP := $(SNOWFLAKE_VENV)/.installed-$(TARGET_SNOWFLAKE_VERSION)-$(FAKESNOW_VERSION)

$(SNOWFLAKE_STAMP):
	test -x $(SNOWFLAKE_VENV)/bin/python || $(PYTHON) -m venv $(SNOWFLAKE_VENV)
	$(SNOWFLAKE_VENV)/bin/python -m pip install --quiet \
	    'meltanolabs-target-snowflake==$(TARGET_SNOWFLAKE_VERSION)' 'fakesnow[server]==$(FAKESNOW_VERSION)'
	touch $(SNOWFLAKE_STAMP)

snowflake: $(SNOWFLAKE_STAMP)

snowflake-check: install snowflake
	$(PY) -m pytest -p no:cacheprovider -q tests/e2e/test_snowflake.py

# The whole loop with no key: sandbox + embedded PostgreSQL, Moovago -> PostgreSQL -> Moovago.
# `make demo KEEP=1` leaves both servers up until Ctrl-C and prints how to connect.
demo: install meltano
	$(PY) scripts/demo.py $(if $(KEEP),--keep)

# Tests run in parallel (pytest-xdist): most of their time is spent waiting on the sandbox's
# rate limit and on subprocesses, so more workers than cores pays; every test is isolated.
# The fast lane has no Meltano or PostgreSQL test, so it takes more workers.
WORKERS ?= 4
CHECK_WORKERS ?= 6

test: install
	$(PY) -m pytest -n $(WORKERS)

# The fast lane for day-to-day work: everything but the end-to-end and slow tests.
check: install
	$(PY) -m pytest -n $(CHECK_WORKERS) -m "not e2e and not slow" -q

# The settings tables of docs/settings.md, regenerated from the plugins' own --about output.
readme: install
	$(PY) scripts/readme_settings.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(MELTANO_VENV) $(PYAIRBYTE_VENV) $(SNOWFLAKE_VENV) .meltano .demo .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
