# Two set-up commands: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean audit

$(BIN)/python:
	bash deploy/local/bootstrap-venv.sh "$(PYTHON)" $(VENV)

$(VENV)/.demo-installed: pyproject.toml hatch_build.py | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[edge,cloud,demo]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml hatch_build.py | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/meterflow demo

test: $(VENV)/.dev-installed
	bash deploy/local/install-servers.sh --with-chromium
	bash deploy/local/install-axe.sh
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Known advisories (PyPI's advisory data, which needs pypi.org itself) against the resolved
# environment; --strict fails when a package could not be looked up. Not part of lint or test:
# see docs/decisions/0020-dependency-advisories.md.
audit: $(VENV)/.dev-installed
	$(BIN)/pip install --quiet --disable-pip-version-check 'pip-audit>=2.10,<3'
	$(BIN)/pip-audit --strict --skip-editable --vulnerability-service pypi --desc on

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .ruff_cache
