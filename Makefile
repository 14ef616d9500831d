# Set-up and entry points. Both `make test` and `make demo` work on a fresh machine:
# they create .venv, install the CPU build of torch first (so no CUDA wheel is pulled), then the project.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test test-fast demo bench-overhead clean

$(BIN)/rltransfer: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/rltransfer

install: $(BIN)/rltransfer

test: install
	$(BIN)/python -m pytest -q -rs

test-fast: install
	$(BIN)/python -m pytest -q -rs -m "not learning and not slow"

demo: install
	$(BIN)/rltransfer demo --out bench/quick --workers 2

bench-overhead: install
	$(BIN)/python benchmarks/scripts/overhead.py

clean:
	rm -rf $(VENV) runs bench
