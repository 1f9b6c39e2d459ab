# Every target installs what it needs first, so on a fresh machine `make run` and `make test` are all it takes.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=

# `make run` trains on the real Fashion-MNIST when Debian's package is installed, else on sklearn's digits.
RUN_VARIANT := $(if $(wildcard $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz),default,digits)

.PHONY: setup data test run lint bench reproduce clean

setup: $(STAMP) data

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: Reprise needs Python 3.11 (dm-reverb ships wheels for 3.9-3.11 only)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	@touch $@

# Real offline data from Debian (docs/data.md). Needs root and apt; otherwise say so and carry on.
data:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist (real Fashion-MNIST, offline)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    || echo "WARNING: apt-get could not install dataset-fashion-mnist; falling back to sklearn digits"; \
	else \
	  echo "NOTE: Fashion-MNIST is not installed and apt/root is not available here."; \
	  echo "      Install it with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu) or set"; \
	  echo "      REPRISE_FASHION_MNIST_DIR to a folder with the four IDX .gz files."; \
	  echo "      Until then 'make run' trains on sklearn's digits (real, 1,797 images) instead."; \
	fi

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

run: setup
	$(PY) -m papers.swish.main --config=papers/swish/config.py:$(RUN_VARIANT) --workdir=workdirs/swish/$(RUN_VARIANT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check common kernels papers configs tests benchmarks

bench: setup
	$(PY) -m benchmarks.run_all --output docs/benchmarks.md

reproduce: setup
	$(PY) -m papers.swish.benchmark --workdir workdirs/swish/benchmark --readme papers/swish/README.md

clean:
	rm -rf workdirs .pytest_cache
