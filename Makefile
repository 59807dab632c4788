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
test: setup browser sam-setup
	$(PY) -m pytest

## setup: the virtualenv with vimo and its development tools (re-run when pyproject.toml changes)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .hypothesis .schemathesis build *.egg-info lambda_function/*.egg-info

# --- browser ---
# Headless Chromium for tests/test_page.py: Debian's own package (never a browser build that a tool
# downloads), driven by the playwright Python package with executable_path. `test` depends on this.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: browser
## browser: install Debian's chromium if it is missing (playwright comes with the dev dependencies)
browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium; }
# --- end browser ---

# --- deploy (sam) ---
# The AWS SAM CLI, cfn-lint and openapi-spec-validator live in their own virtualenv, .venv-sam, on
# Python 3.12 (the Lambda runtime's version): their pins need not agree with the dev venv's.
# `sam build` needs a python3.12 on PATH too; pyenv's shim may refuse to run one, so look in pyenv's
# versions first (set PYTHON312 to choose another).
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHON312 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
export PYTHON312
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_TOOLS := 'aws-sam-cli>=1.120,<2' 'cfn-lint>=1.20,<2' 'openapi-spec-validator>=0.7,<1'
SAM_RUN := SAM_CLI_TELEMETRY=0 PATH="$(dir $(PYTHON312)):$$PATH"
STACK ?= vimo

.PHONY: sam-setup sam-validate sam-build sam-deploy sam-logs

## sam-setup: the SAM CLI, cfn-lint and openapi-spec-validator in .venv-sam (make test needs them)
sam-setup: $(SAM_VENV)/.installed

$(SAM_VENV)/.installed:
	@test -n "$(PYTHON312)" && "$(PYTHON312)" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
	  || { echo "sam-setup: no working python3.12 found (the Lambda runtime is python3.12); install one (pyenv install 3.12) or set PYTHON312=/path/to/python3.12" >&2; exit 1; }
	test -x $(SAM_VENV)/bin/python || "$(PYTHON312)" -m venv $(SAM_VENV)
	nice $(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	nice $(SAM_VENV)/bin/python -m pip install --quiet $(SAM_TOOLS)
	touch $@

## sam-validate: sam validate (the SAM translator), sam validate --lint, cfn-lint, openapi-spec-validator
sam-validate: sam-setup
	$(SAM_RUN) $(SAM) validate --region "$${AWS_REGION:-$${AWS_DEFAULT_REGION:-us-east-1}}" --template-file template.yaml
	$(SAM_RUN) $(SAM) validate --lint --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(SAM_VENV)/bin/openapi-spec-validator swagger.yaml

## sam-build: build the Lambda package into .aws-sam/build
sam-build: sam-setup
	$(SAM_RUN) nice $(SAM) build --template-file template.yaml

## sam-deploy: build, then deploy (guided the first time; later runs reuse samconfig.toml)
sam-deploy: sam-build
	$(SAM_RUN) $(SAM) deploy $(if $(wildcard samconfig.toml),,--guided)

## sam-logs: follow the deployed function's logs (STACK=name if not "vimo")
sam-logs: sam-setup
	$(SAM_RUN) $(SAM) logs --stack-name $(STACK) --name VimoFunction --tail
# --- end deploy ---
