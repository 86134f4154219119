# The two quickstart commands: `make train` and `make test`. Each sets everything up first.
# `make lint`: ruff check and ruff format --check (CI runs it before the tests); `make format` fixes both.
PYTHON ?= python3
VENV ?= .venv
# CPU build by default. With a CUDA build of torch already in $(VENV), setup keeps it (see README).
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup train test test-slow lint format benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/setup_system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

train: setup
	$(BIN)/python scripts/train.py $(ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-slow: setup
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
