# Two commands for a newcomer: `make run` and `make test`. Both create .venv and install
# from the package registries; nothing else needs to be on the machine but Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run demo demo-capture test bench lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Tollgate needs Python 3.11+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/tollgate serve

# Governed calls to built-in vendor emulators, no vendor account needed. Installs the dev extras so
# the scripted agent uses the official stripe SDK (without them it falls back to plain HTTP).
demo: $(VENV)/.installed-dev
	$(BIN)/tollgate demo

# Rewrites docs/demo.txt, the capture the README shows, from a fresh `tollgate demo --no-wait`
# (tests/test_demo.py fails when the committed capture is stale).
demo-capture: $(VENV)/.installed-dev
	$(BIN)/python scripts/capture_demo.py

# The suite starts its own Postgres (the pgserver wheel) in a temporary directory.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff over all the Python here; mypy over what [tool.mypy] in pyproject.toml names.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check proxy vendors migrations emulators tests bench scripts
	$(BIN)/mypy

# Needs wrk and nginx (Debian: apt-get install -y wrk nginx); see bench/README.md. py-spy gives
# the report its profile of the request path (the bench runs without it, with no profile).
bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet py-spy
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
