# make run:  install everything, then serve the app (prints the URL)
# make test: install everything, then run the whole test suite (unit, numeric and browser tests)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEFAULT_MODEL := smollm2-135m-instruct
# One BLAS thread: on 2 cores numpy is about 10x slower with two when the other core is busy.
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1

.PHONY: setup system-packages model run test clean

setup: system-packages $(VENV)/.installed web/node_modules/.package-lock.json model

system-packages:
	bash scripts/install-system-packages.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund

model: $(VENV)/.installed
	$(PY) -m models fetch $(DEFAULT_MODEL)

run: setup
	$(PY) -m static_server

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) web/node_modules test-artifacts
