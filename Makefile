# Every target installs what it needs first, so on a fresh machine `make run` and `make test` are all it takes.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TIMM_VENV := .venv-timm
TORCH_VENV := .venv-torch
# The current stack (requirements/current.txt): newest JAX, Flax, Orbax, TensorFlow, numpy 2; no dm-reverb.
CURRENT_VENV := .venv-current
CURRENT_PY := $(CURRENT_VENV)/bin/python
CURRENT_STAMP := $(CURRENT_VENV)/.installed
# The papers `make reproduce` runs, each also a target of its own: make reproduce-<name>.
REPRODUCE := swish swish-search stand-alone-attention halonet low-rank-local replay-fundamentals fast-wavenet \
  fast-generation svpg backprop-evolution seq2seq-pretraining
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=

# `make run` trains on the real Fashion-MNIST when Debian's package is installed, else on sklearn's digits.
RUN_VARIANT := $(if $(wildcard $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz),default,digits)

.PHONY: setup setup-current data test test-current test-long run lint bench timm-env torch-env sweep reproduce results sizes $(addprefix reproduce-,$(REPRODUCE)) clean

setup: $(STAMP) data

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: Reprise needs Python 3.11 (dm-reverb ships wheels for 3.9-3.11 only)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	@touch $@

# Everything but the replay paper (which needs dm-reverb, hence the pinned stack) on today's JAX: docs/architecture.md.
setup-current: $(CURRENT_STAMP) data

$(CURRENT_STAMP): pyproject.toml requirements/current.txt
	$(PYTHON) -m venv $(CURRENT_VENV)
	$(CURRENT_PY) -m pip install --quiet --upgrade pip
	$(CURRENT_PY) -m pip install --quiet -r requirements/current.txt
	$(CURRENT_PY) -m pip install --quiet --no-deps -e .  # pyproject names dm-reverb, which this stack leaves out
	@touch $@

# Real offline data from Debian (docs/data.md): Fashion-MNIST; espeak-ng + the King James Bible for the speech
# corpus espeak_speech_local; the Ding dictionary's sentence pairs, German fortunes and man pages for the English-German
# text datasets. One apt-get call for whatever is missing; needs root and apt, otherwise say so.
data:
	@missing=""; \
	[ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v bible >/dev/null || missing="$$missing bible-kjv"; \
	[ -f /usr/share/trans/de-en ] || missing="$$missing trans-de-en"; \
	[ -d /usr/share/games/fortunes/de ] || missing="$$missing fortunes-de"; \
	[ -d /usr/share/man/de/man1 ] || missing="$$missing manpages-de"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's$$missing (real data that works offline, docs/data.md)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "WARNING: apt-get could not install$$missing; docs/data.md lists the fallbacks"; \
	else \
	  echo "NOTE: Debian's$$missing not installed and apt/root is not available here. Install with"; \
	  echo "      'sudo apt-get install$$missing' (Debian/Ubuntu). Without dataset-fashion-mnist (or"; \
	  echo "      REPRISE_FASHION_MNIST_DIR pointing at its four IDX .gz files) 'make run' trains on sklearn's digits;"; \
	  echo "      without espeak-ng and bible-kjv the speech dataset espeak_speech_local cannot be built (tfds"; \
	  echo "      'ljspeech' or 'vctk', prepared elsewhere, work instead); without trans-de-en, fortunes-de and"; \
	  echo "      manpages-de the English-German text datasets cannot be built (tfds 'wmt14_translate/de-en' works instead)."; \
	fi

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite on the current stack; tests marked reverb skip there with the reason.
test-current: setup-current
	$(CURRENT_PY) -m pytest $(PYTEST_ARGS)

# The heaviest end-to-end tests (kill-and-resume, whole sweeps, real-dataset builds); CI runs them after make test.
test-long: setup
	$(PY) -m pytest -m long $(PYTEST_ARGS)

run: setup
	$(PY) -m papers.swish.main --config=papers/swish/config.py:$(RUN_VARIANT) --workdir=workdirs/swish/$(RUN_VARIANT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check common kernels papers configs tests benchmarks

bench: setup timm-env torch-env
	$(PY) -m benchmarks.run_all --output docs/benchmarks.md

# timm's PyTorch HaloAttn, for the halo_attention benchmark only: its own environment, never the project's.
timm-env: $(TIMM_VENV)/.installed

$(TIMM_VENV)/.installed: requirements/bench-timm.txt
	$(PYTHON) -m venv $(TIMM_VENV)
	$(TIMM_VENV)/bin/python -m pip install --quiet -r requirements/bench-timm.txt
	@touch $@

# PyTorch alone, for the fast_wavenet benchmark's incremental-generation peer: its own environment, never the
# project's.
torch-env: $(TORCH_VENV)/.installed

$(TORCH_VENV)/.installed: requirements/bench-torch.txt
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet -r requirements/bench-torch.txt
	@touch $@

# Every paper's measured tables, each rewriting its README block; hours on a CPU (each README says how long).
# Finished runs are kept in workdirs/, so an interrupted `make reproduce` resumes. One paper: make reproduce-<name>.
reproduce: sizes $(addprefix reproduce-,$(REPRODUCE))
	$(PY) -m common.results --output docs/results.md

# The model-size tables (parameters, FLOPs) of the papers whose config.py has PAPER_SIZES, against the paper's
# numbers: README blocks and results records, from abstract models in minutes; then docs/results.md.
sizes: setup
	$(PY) -m common.sizes
	$(PY) -m common.results --output docs/results.md

# docs/results.md again from the claims records the reproduce scripts wrote (papers/*/results/*.json); no training.
results: setup
	$(PY) -m common.results --output docs/results.md

reproduce-swish: setup
	$(PY) -m papers.swish.reproduce

reproduce-swish-search: setup
	$(PY) -m papers.swish.search --config=papers/swish/config.py:search_exhaustive \
	  --workdir=workdirs/swish/search_exhaustive --readme=papers/swish/README.md

reproduce-stand-alone-attention: setup
	$(PY) -m papers.stand_alone_attention.reproduce

reproduce-halonet: setup
	$(PY) -m papers.halonet.reproduce

reproduce-low-rank-local: setup
	$(PY) -m papers.low_rank_local.reproduce

reproduce-replay-fundamentals: setup
	$(PY) -m papers.replay_fundamentals.reproduce

reproduce-fast-wavenet: setup
	$(PY) -m papers.fast_wavenet.main --config=papers/fast_wavenet/config.py --workdir=workdirs/fast_wavenet/default
	$(PY) -m papers.fast_wavenet.bench --quick --demo_layers=2,4,6,8,10,12 --record

# Cached vs naive generation of the paper's CIFAR-10 PixelCNN++ at batch 1-256: same pixels, speed-up per batch
# (results/generation.json; about 30 min on one core).
reproduce-fast-generation: setup
	$(PY) -m papers.fast_generation.bench --record --models cifar10 --batches 1,4,16,64,256 --repeats 1 --single_thread

# CartPole (REINFORCE, with the temperature ablation), then the paper's tasks at 1% of its samples (A2C): ~1 h.
reproduce-svpg: setup
	$(PY) -m papers.svpg.reproduce --max-concurrent 2
	$(PY) -m papers.svpg.reproduce --sweep configs/sweeps/svpg_double_pendulum.py --max-concurrent 2
	$(PY) -m papers.svpg.reproduce --sweep configs/sweeps/svpg_swingup.py --max-concurrent 2

reproduce-seq2seq-pretraining: setup
	$(PY) -m papers.seq2seq_pretraining.reproduce

reproduce-backprop-evolution: setup
	$(PY) -m papers.backprop_evolution.search --config=papers/backprop_evolution/config.py:search \
	  --workdir=workdirs/backprop_evolution/search --readme=papers/backprop_evolution/README.md
	$(PY) -m papers.backprop_evolution.reproduce

# One sweep on Ray (docs/sweeps.md): make sweep SWEEP=configs/sweeps/<file>.py [ADDRESS=auto|HOST:PORT] [MAX_CONCURRENT=N]
sweep: setup
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=configs/sweeps/<file>.py [ADDRESS=auto|HOST:PORT] [MAX_CONCURRENT=N]"; exit 2; }
	$(PY) -m common.sweep run $(SWEEP) $(if $(ADDRESS),--address=$(ADDRESS)) $(if $(MAX_CONCURRENT),--max-concurrent=$(MAX_CONCURRENT))

clean:
	rm -rf workdirs .pytest_cache
