# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps what it needs.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test lint format bench clean lock upgrade-lock

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(BIN)/regioncard demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# requirements.lock pins every package (runtime and dev) at the versions CI tested; bootstrap.sh
# installs exactly those. `make lock` re-resolves after a pyproject.toml change, keeping every
# pin that still fits; `make upgrade-lock` moves everything to the newest versions allowed
# (docs/dependencies.md).
PIP_COMPILE = $(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url \
	--no-emit-find-links --output-file requirements.lock pyproject.toml

lock: setup
	$(PIP_COMPILE)

upgrade-lock: setup
	$(PIP_COMPILE) --upgrade

bench: setup
	@for b in bench/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
