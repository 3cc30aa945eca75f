# Two commands a new user needs (each sets up .venv/ on first use):
#   make run    # the default study, end to end, with its report
#   make test   # the test suite (make test-fast: the quick tier, a few minutes)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NO_BYTECODE := /tests?/|site-packages/transformers/models/(?!(auto|dinov2|clip|vit)/)[a-z0-9_]+/|site-packages/ray/(rllib|serve|llm)/

.PHONY: run quick test test-fast lint format system-deps figure-deps bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[test]'
	@# pip compiles the installed modules on one core; compileall uses every core (the CUDA
	@# build of torch brings GBs). A file some package ships for another Python fails to
	@# compile, as it would under pip: that is not an install failure. Left out, a third of
	@# the bytes: the packages' own test suites and the model families of transformers no
	@# backbone here uses (a module without bytecode still imports, compiled in memory).
	$(PY) -m compileall -q -j 0 -x '$(NO_BYTECODE)' $(VENV)/lib > /dev/null || true
	touch $(STAMP)

# the report's static figures need Chromium: installed on first use where this user may
run: $(STAMP) figure-deps
	$(PY) -m orchestrator run ablation $(ARGS)

quick: $(STAMP) figure-deps
	$(PY) -m orchestrator run ablation --quick $(ARGS)

# two workers, one test file each at a time (a file's studies are shared by its tests): on 2
# cores one worker leaves the other core idle most of the time (imports, Ray, subprocesses)
JOBS ?= 2
test: $(STAMP) system-deps
	$(PY) -m pytest -n $(JOBS) --dist loadfile --durations=15 $(ARGS)

# the quick tier for contributors: every test but those marked slow (Ray, the stand-in, studies)
test-fast: $(STAMP) system-deps
	$(PY) -m pytest -m "not slow" $(ARGS)

# ruff (lint, import order, format) and mypy on the modules listed in pyproject.toml
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff check --fix --select I .
	$(PY) -m ruff format .

system-deps:
	@scripts/install-system-deps

figure-deps:
	@scripts/install-system-deps --figures

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/step_overhead.py
