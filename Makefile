# Two entry points for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
# Each one creates or refreshes the local virtualenv (.venv) by itself.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench coverage clean venv reliability reliability-quick fuzz-atheris

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,plot,mqtt,mcap]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/armbus demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check armbus/*.py bus joints controller hil tools tests
	$(BIN)/mypy
	$(BIN)/python -m armbus.tools.layers

coverage: $(STAMP)
	$(BIN)/python -m coverage run -m pytest
	$(BIN)/python -m coverage report --skip-covered --sort=cover

bench: $(STAMP)
	$(BIN)/armbus bench

reliability: $(STAMP)
	$(BIN)/python -m armbus.tools.campaigns.report

reliability-quick: $(STAMP)
	$(BIN)/python -m armbus.tools.campaigns.report --quick

fuzz-atheris: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	$(BIN)/python -m pytest tests/fuzz/test_atheris.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
