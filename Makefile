# FlorDB: `make demo` runs the tutorial flow, `make test` runs every test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help install torch demo test test-rust test-python bench bench-hindsight fmt lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.deps: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

# torch for the replay exactness tests and benchmarks: installed once from PyPI into a
# cache outside the checkout (several GB of CUDA libraries), and put on .venv's path by a
# .pth file. If it cannot be installed, the torch tests skip and say why.
TORCH_VERSION ?= 2.15.0
TORCH_DIR     ?= $(HOME)/.cache/flordb/torch-$(TORCH_VERSION)

torch: $(VENV)/.deps ## Install torch (cached in ~/.cache/flordb) for the torch tests and benchmarks
	@if [ ! -d "$(TORCH_DIR)" ]; then \
		echo "installing torch $(TORCH_VERSION) into $(TORCH_DIR) (once)"; \
		rm -rf "$(TORCH_DIR).tmp"; \
		$(PIP) install -q --target "$(TORCH_DIR).tmp" torch==$(TORCH_VERSION) \
			&& mv "$(TORCH_DIR).tmp" "$(TORCH_DIR)" \
			|| echo "warning: torch could not be installed; the torch tests will be skipped"; \
	fi
	@if [ -d "$(TORCH_DIR)" ]; then \
		echo "$(TORCH_DIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/flordb-torch.pth"; \
	fi

install: $(VENV)/.deps torch ## Build the engine and install `flordb` and `flor` into .venv/
	rm -f python/flordb/_native*.so
	$(VENV)/bin/maturin develop --release -q

demo: install ## Record runs of the tutorial script and show the table
	$(PY) examples/tutorial/walkthrough.py

test: install test-rust test-python ## Build, then run all Rust and Python tests

test-rust: ## Rust unit and CLI tests
	cargo nextest run --workspace --exclude flor-py --no-fail-fast

test-python: ## Python tests: real scripts in throwaway git repositories, two at a time
	$(PY) -m pytest -q -n 2 tests

bench: install ## Benchmarks against flordb 4.0.1 (prints tables)
	$(PY) bench/run.py

bench-hindsight: install ## flor replay on 8 torch runs over 3 versions vs re-training and flordb 4.0.1 (~40 min)
	$(PY) bench/hindsight.py

fmt: ## Format Rust code
	cargo fmt --all

lint: ## Format check and clippy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean: ## Remove build outputs and the virtual environment
	cargo clean
	rm -rf $(VENV) python/flordb/_native*.so
