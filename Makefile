# retailmesh: `make run` serves the embedded mesh, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run run-mesh seed test fuzz lint openapi bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/retailmesh run

run-mesh: install
	$(VENV)/bin/retailmesh run-mesh

seed: install
	$(VENV)/bin/retailmesh seed

# pytest finds or starts Redis itself (tests/conftest.py), checks the committed OpenAPI
# specs against the code, and runs a bounded schemathesis pass through the gateway.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

# The full schemathesis run: many more examples per operation.
fuzz: install
	FUZZ_MAX_EXAMPLES=500 $(PY) -m pytest tests/test_contracts_fuzz.py

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

openapi: install
	$(VENV)/bin/retailmesh openapi

# Benchmarks, side by side in one run; loopback only. BENCH_SECONDS sets the length.
bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache
