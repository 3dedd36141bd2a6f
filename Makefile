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
	$(BIN)/pip install -q -e '.[test,xm]'
	touch $(STAMP)

install: $(STAMP)

# The main job, all on the CPU: demo dataset -> grid -> fits -> figures + report.
# Every stage reuses what already finished, so rerunning it is cheap.
DEMO_BOOTSTRAP ?= 200
demo: $(STAMP)
	$(BIN)/pac data --preset demo --out results/data/demo
	$(BIN)/pac grid launch/grids/demo.py --parallel 2
	$(BIN)/pac fit results/demo --bootstrap $(DEMO_BOOTSTRAP)
	$(BIN)/pac figures results/demo
	@echo "report: results/demo/report.md"

# The laws the 20-minute demo cannot resolve: the demo grid with 3 seeds and a fifth budget
# (launch/grids/study.py; about 70 minutes of training on 2 cores, see its docstring).
study: $(STAMP)
	$(BIN)/pac data --preset demo --out results/data/demo
	$(BIN)/pac grid launch/grids/study.py --parallel 2
	$(BIN)/pac fit results/study --bootstrap $(DEMO_BOOTSTRAP)
	$(BIN)/pac figures results/study
	@echo "report: results/study/report.md"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python -m benchmarks.train_throughput --dataset results/data/demo --presets tiny 250k

clean:
	rm -rf $(VENV)
