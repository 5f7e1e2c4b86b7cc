# retina_nbdev: the two commands of the README (`make demo`, `make test`) and a few more.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= small
OUT ?= results

.PHONY: help install demo test check-sync nbtest pytest docs lab bench bench-env notebooks pretrained clean

help:
	@echo "make demo      - install, run the whole study at the small preset, write $(OUT)/"
	@echo "make test      - install, check notebooks clean and in sync, nbdev-test, pytest"
	@echo "make docs      - render the notebooks to a browsable site in _docs/ (offline without Quarto)"
	@echo "make notebooks - execute every notebook at the small preset and save its outputs"
	@echo "make bench     - run the benchmarks tests/bench_*.py (PyTorch twin in .venv-bench)"
	@echo "make pretrained - rebuild the shipped small models (retina_nbdev/pretrained/) from the pipeline"
	@echo "make lab       - JupyterLab on the notebooks"

# A venv made once; re-installed when pyproject.toml's content changes. The stamp holds the sha256 of the file it was
# installed from: `nbdev-export` (in check-sync) rewrites pyproject.toml with the same bytes, a new mtime must not reinstall.
PYPROJECT_SHA := $(firstword $(shell sha256sum pyproject.toml 2>/dev/null))
ifneq ($(PYPROJECT_SHA),$(strip $(shell cat $(STAMP) 2>/dev/null)))
.PHONY: $(STAMP)
endif
$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	@echo $(PYPROJECT_SHA) > $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/retina-nbdev run --preset $(PRESET) --out $(OUT)
	@echo "The report is $(OUT)/report.html; the numbers are in $(OUT)/summary.json"

# Fail if nbdev-clean or nbdev-export changes any file (tracked, or new in the library).
check-sync: install
	@before=$$(git status --porcelain -- nbs retina_nbdev; git diff -- nbs retina_nbdev | sha1sum); \
	$(BIN)/nbdev-clean; $(BIN)/nbdev-export; \
	after=$$(git status --porcelain -- nbs retina_nbdev; git diff -- nbs retina_nbdev | sha1sum); \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean or nbdev-export changed these files: run them and commit the result"; \
	  git status --porcelain -- nbs retina_nbdev; exit 1; fi; \
	echo "notebooks clean, library in sync"

# The studies the paper notebooks read are built once first (the tiny one, and the small one from the shipped
# models), so that no notebook's own time includes them.
nbtest: install
	IN_TEST=1 $(BIN)/python -c 'from retina_nbdev.pipeline import study_run; study_run(); study_run(pretrained=True)'
	IN_TEST=1 $(BIN)/nbdev-test --n-workers 2 --timing

pytest: install
	$(BIN)/python -m pytest tests -q --durations=15

test: check-sync nbtest pytest

notebooks: install
	$(BIN)/python tools/run_notebooks.py $(NB)
	$(BIN)/nbdev-clean

# The shipped models (retina_nbdev/pretrained/): the small study's simulate, train and evaluate stages (skipped when
# $(OUT) already holds them, as after `make demo`), then its CNN and LN with their cards.
pretrained: install
	$(BIN)/retina-nbdev evaluate --preset small --seed 0 --out $(OUT)
	$(BIN)/python -c 'from retina_nbdev.pipeline import export_run_models; print(*export_run_models("$(OUT)"), sep="\n")'

docs: install
	$(BIN)/python tools/build_docs.py --out _docs --readme

lab: install
	$(BIN)/jupyter lab nbs

# The benchmark's own environment: PyTorch (CPU build) for the training comparison, never a library dependency.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed:
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0 numpy
	@touch $@

bench-env: $(BENCH_VENV)/.installed

bench: install bench-env
	@shopt -s nullglob; benches=(tests/bench_*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "no benchmarks yet"; fi; \
	for b in "$${benches[@]}"; do echo "== $$b"; $(BIN)/python "$$b"; done

clean:
	rm -rf _docs _proc .pytest_cache
