# Two entry points on a fresh machine: `make demo` (the main job, CPU) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# No MUJOCO_GL: nothing renders, and harness.data.tasks runs physics only by default.
export XLA_PYTHON_CLIENT_PREALLOCATE ?= false

.PHONY: install demo study test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,xm,minari,tensorboard]'
	touch $(STAMP)

install: $(STAMP)

# The main job, all on the CPU: demo dataset -> grid -> fits -> figures + report.
# `make study` is the same job on launch/grids/study.py: the laws the 20-minute demo cannot
# resolve (3 seeds, budgets 1e11-3e12; about 70 minutes of training on 2 cores).
# Every stage reuses what already finished, so rerunning it is cheap.
DEMO_BOOTSTRAP ?= 200
demo study: $(STAMP)
	$(BIN)/pac data --preset demo --out results/data/demo
	$(BIN)/pac grid launch/grids/$@.py --parallel 2
	$(BIN)/pac fit results/$@ --bootstrap $(DEMO_BOOTSTRAP)
	$(BIN)/pac figures results/$@
	@echo "report: results/$@/report.md"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python -m benchmarks.train_throughput --dataset results/data/demo --presets tiny 250k

clean:
	rm -rf $(VENV)
