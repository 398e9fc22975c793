# latentlab developer commands. `make demo` and `make test` set up .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.latentlab-installed
# torch for this machine: these releases install from a local copy here (CPU use; the
# torchvision that open_clip needs breaks beside other torch wheels). Override on your own
# machine, e.g. `make TORCH="torch torchvision" test`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: help setup demo test test-fast bench docs docs-serve clean

help:
	@echo "make demo   - set up .venv if needed, render a morph on the embedded model (renders/demo/)"
	@echo "make test   - set up .venv if needed, run the test suite (one process per core; TEST_JOBS=0: one process)"
	@echo "make bench  - run the CPU render benchmark of docs/performance.md (a few minutes)"
	@echo "make docs   - build the documentation site into build/site/ (docs-serve: preview it)"
	@echo "make test-fast - the tests in one process, stopping at the first failure"
	@echo "make clean  - remove the docs build, test caches and the demo's render (keeps .venv and your other renders/)"

setup: $(STAMP)

# a .venv whose python no longer runs (its interpreter moved or removed) is set up again even
# though its stamp is newer than pyproject.toml (the recipe below then makes the .venv anew)
ifneq ($(shell $(BIN)/python -c "" >/dev/null 2>&1 && echo runs),runs)
.PHONY: $(STAMP)
endif

$(STAMP): pyproject.toml
	@# a .venv whose python or pip does not run (an interrupted set-up, a moved interpreter) is made anew,
	@# and so is one whose python is older than pyproject.toml's requires-python (made by another PYTHON,
	@# the install refused it: without this, `make PYTHON=python3.11 demo` went on using it)
	@$(BIN)/python -c "import sys; sys.exit(sys.version_info < (3, 10))" >/dev/null 2>&1 \
		&& $(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m latentlab.demo

# one test process per core, at most TEST_JOBS (each test runs torch on one thread); TEST_JOBS=0
# runs them all in this process, e.g. to use a debugger
TEST_JOBS ?= 8
test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_JOBS)),,-n auto --maxprocesses=$(TEST_JOBS))

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow"

# the command of docs/performance.md's CPU table ("Measured"): about 2.5 minutes on 2 cores
bench: $(STAMP)
	$(BIN)/python benchmarks/render_speed.py --tiny --frames 16 --threads 1 --repeats 2

docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/python -m mkdocs serve

# renders/ holds the renders of every CLI command run here (hours of work, maybe): only the demo's goes
clean:
	rm -rf build .pytest_cache .hypothesis renders/demo renders/demo-inputs renders/demo.mp4 renders/demo.gif
