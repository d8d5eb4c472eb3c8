# Every target creates the virtualenv (.venv) and installs translate into it first, so a fresh clone
# needs nothing else: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-numeric bench bench-quick quality quality-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

# Train the cGAN on the bundled MNIST subset on the CPU, then sample a grid from it.
demo: $(STAMP)
	$(BIN)/translate-train experiment=cgan_demo
	$(BIN)/translate-test run="$$(ls -td outputs/cgan/mnist_subset/*/ | head -n 1)"
	@echo "Samples: $$(ls -td outputs/cgan/mnist_subset/*/ | head -n 1)test_latest/grid.png"

# The layers contract (pyproject.toml: tool.importlinter), ruff's rules and the type checker (tool.mypy) first,
# then the tests, TEST_WORKERS files at a time (pytest-xdist; each file's tests stay in one process, so a
# file's shared fixtures are built once). TEST_WORKERS=1 runs them one after another.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# The learning tests once more on another numeric path: ATen's kernels without SIMD, on two threads (other sums
# in another order). A GAN's outcome moves with the path as with the seed; a threshold set on one CPU kind only
# fails here. Every path's spread: scripts/outcome_spread.py and docs/results.md (outcome tests across numeric paths).
# OMP_WAIT_POLICY=PASSIVE: two threads that sleep at each barrier rather than spin (on a shared machine, 5 times faster).
NUMERIC_PATH ?= ATEN_CPU_CAPABILITY=default TRANSLATE_TEST_THREADS=2

test-numeric: $(STAMP)
	env OMP_WAIT_POLICY=PASSIVE $(NUMERIC_PATH) $(BIN)/pytest tests/test_learning.py

# The benchmark suite (scripts/benchmark.py): every speed setting against the reference step, measured
# side by side, each runner in a process of its own (at most two alive: the memory stays that of two
# runners); writes benchmark/benchmark.json and benchmark/benchmark.md, with each setting's peak memory.
# bench: the GPU suite and the precision check (scripts/bench_precision.py: bf16's losses against fp32's
# seed noise), sized for about 15 minutes before each runner had its process (their starts add a few);
# bench-quick: the CPU subset. Their time and peak memory: docs/performance.md.
bench: $(STAMP)
	$(BIN)/python scripts/benchmark.py --out benchmark
	$(BIN)/python scripts/bench_precision.py model=cyclegan device=cuda --out benchmark

bench-quick: $(STAMP)
	$(BIN)/python scripts/benchmark.py --quick --device cpu --out benchmark

# The quality suite (scripts/quality.py): each "better images" recipe against the papers' defaults on small
# MNIST tasks with known answers (three tasks, two held out), several seeds; writes quality/quality.json and
# quality/quality.md. quality: about 90 CPU-minutes, 45 minutes on 2 idle cores (every recipe, 3 seeds);
# quality-quick: about 22 CPU-minutes (2 recipes a task, 2 seeds). Both run on the bundled MNIST subset;
# QUALITY_ARGS="--mnist-root path/holding/MNIST" uses the real MNIST, QUALITY_ARGS="--seeds 5" more seeds.
quality: $(STAMP)
	$(BIN)/python scripts/quality.py --out quality $(QUALITY_ARGS)

quality-quick: $(STAMP)
	$(BIN)/python scripts/quality.py --quick --out quality-quick $(QUALITY_ARGS)

clean:
	rm -rf $(VENV) outputs multirun quality quality-quick
