# The two commands a newcomer needs: `make run` and `make test`. Everything else is set up on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
export PORT

.PHONY: run test setup clean

## run: serve the API on http://127.0.0.1:$(PORT) (set PORT to change)
run: setup
	$(VENV)/bin/vimo serve --port $(PORT)

## test: set up and run the whole suite
test: setup
	$(PY) -m pytest

## setup: the virtualenv with vimo and its development tools (re-run when pyproject.toml changes)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .hypothesis build *.egg-info lambda_function/*.egg-info
