# Two entry points on a fresh machine: `make demo` (main job) and `make test` (the test suite).
# Both create .venv and install the project into it first (torch pinned to the local CPU build).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,ns3,learn,sweep]'
	touch $(STAMP)

# `make test` runs the suite on one pytest-xdist worker per CPU (at most 4; the ns-3 reference tests
# share one worker so the wheel loads once); TEST_WORKERS=0 or `make test-serial` runs it in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; [ $$n -lt 2 ] && n=0; echo $$n)

.PHONY: install demo test test-serial bench
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/oransim run scenarios/quick.yaml --policy pf --overwrite --report

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-serial: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
