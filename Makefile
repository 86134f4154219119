# The two quickstart commands: `make train` and `make test`. Each sets everything up first.
# `make lint`: ruff check and ruff format --check (CI runs it before the tests); `make format` fixes both.
PYTHON ?= python3
VENV ?= .venv
# torch from pip's index (on PyPI for Linux: the CUDA-enabled build, which also runs on CPUs);
# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the smaller CPU-only build. A torch already in $(VENV)
# is kept (see README).
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup train test test-slow lint format benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/setup_system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
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
