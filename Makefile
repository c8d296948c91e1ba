# Set-up and everyday targets. `make demo` and `make test` each install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.13.0 (the CPU build where the local wheel cache has it, as on CI) unless .venv already
	# has a torch -- GPU users install their CUDA torch into .venv first.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test test-all lint bench
install: $(STAMP)

## The main job on the embedded default: the shipped EfficientNet scenario, the 2021 CAISO
## evaluation trace and the shipped trained policy, against the paper's optimizer, BASE and ORACLE.
demo: $(STAMP)
	$(BIN)/clover-rl evaluate --scenario efficientnet --policy checkpoints/efficientnet \
	  --policy clover --policy base --policy oracle --hours 48 --out runs/demo

## The test suite as CI runs it (gpu tests skip themselves without CUDA).
test: $(STAMP)
	$(BIN)/python -m pytest -q --timeout 900

lint: $(STAMP)
	$(BIN)/ruff check clover_rl tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/simulator_speed.py
	$(BIN)/python benchmarks/evaluate_speed.py
