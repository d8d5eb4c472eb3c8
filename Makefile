# Every target creates the virtualenv (.venv) and installs translate into it first, so a fresh clone
# needs nothing else: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench bench-quick clean

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

# The layers contract (pyproject.toml: tool.importlinter) and ruff's rules first, then the tests.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/pytest

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

clean:
	rm -rf $(VENV) outputs multirun
