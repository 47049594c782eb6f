# Two commands on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch 2.13.0 is on this disk; installing it first keeps pip from pulling a multi-GB CUDA build.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
ARGS ?=
DATA_ARGS ?=

.PHONY: install data train test test-slow test-distributed lint bench clean-data

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

data: install
	$(PY) -m facevae.prepare $(DATA_ARGS)

train: data
	$(PY) train.py $(ARGS)

test: install
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow" -q

test-slow: install
	WANDB_MODE=disabled $(PY) -m pytest -m slow -q

test-distributed: install
	WANDB_MODE=disabled $(PY) -m pytest -m distributed -q

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m facevae.bench extraction
	$(PY) -m facevae.bench train
	$(PY) -m facevae.bench sweep
	$(PY) -m facevae.bench results

clean-data:
	rm -rf data/cache
