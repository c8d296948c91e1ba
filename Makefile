# Set-up and everyday targets. `make demo` and `make test` each install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOURS ?= 48
# The prerequisite that installs; `make demo INSTALL= BIN=/path/to/env/bin` uses an existing env.
INSTALL ?= $(STAMP)
# pip's own progress is kept (no -q): the first install downloads and builds for a minute or two.
PIP_FLAGS ?= --progress-bar on

$(STAMP): pyproject.toml
	@echo "[1/4] creating $(VENV) (Python >= 3.10)"
	python3 -m venv $(VENV)
	@echo "[2/4] upgrading pip"
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	@# torch 2.13.0 (the CPU build where the local wheel cache has it, as on CI) unless .venv already
	@# has a torch -- GPU users install their CUDA torch into .venv first.
	@echo "[3/4] torch (kept if $(VENV) already has one)"
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(PIP_FLAGS) torch==2.13.0
	@echo "[4/4] clover-rl and its dependencies (editable, with the dev extras)"
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $(STAMP)
	@echo "installed: $(BIN)/clover-rl (activate with: . $(VENV)/bin/activate)"

.PHONY: install demo test test-all lint bench
install: $(STAMP)

## The main job on the embedded default: the shipped EfficientNet scenario, the 2021 CAISO
## evaluation trace, the default controller (mpc: it beats the shipped learned policies on the
## benchmark suite) and the shipped trained policy, against the paper's optimizer, BASE and ORACLE.
demo: $(INSTALL)
	$(BIN)/clover-rl evaluate --scenario efficientnet --policy mpc --policy checkpoints/efficientnet \
	  --policy clover --policy base --policy oracle --hours $(HOURS) --out runs/demo

## The test suite as CI runs it (gpu tests skip themselves without CUDA).
test: $(INSTALL)
	$(BIN)/python -m pytest -q --timeout 900

lint: $(INSTALL)
	$(BIN)/ruff check clover_rl tests benchmarks

bench: $(INSTALL)
	$(BIN)/python benchmarks/simulator_speed.py
	$(BIN)/python benchmarks/evaluate_speed.py
