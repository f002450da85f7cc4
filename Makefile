# make run:  install everything, build the default bundle if missing, then serve the app (prints the URL)
# make test: install everything, then run the whole test suite (unit, numeric and browser tests)
# make serve: the same bundle behind OpenAI's HTTP API at http://127.0.0.1:8080/v1 (python -m serve)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEFAULT_MODEL := smollm2-135m-instruct
DEFAULT_BUNDLE := bundles/$(DEFAULT_MODEL)-gguf
# One BLAS thread: on 2 cores numpy is about 10x slower with two when the other core is busy.
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1

.PHONY: setup system-packages model run serve test clean

setup: system-packages $(VENV)/.installed web/dist/.built web/dist/pyodide/.built model

system-packages:
	bash scripts/install-system-packages.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund

# The engine, its worker and the chat page, bundled for the browser (served under /static/).
web/dist/.built: web/node_modules/.package-lock.json web/build.mjs $(shell find web/src -type f)
	npm run --prefix web --silent build
	touch $@

# /python's Pyodide (npm), the tabllm-browser wheel, the pinned openai wheels for Pyodide and their lock
# (served under /pyodide/); the openai wheels are downloaded once, here, never at run time.
web/dist/pyodide/.built: web/node_modules/.package-lock.json $(VENV)/.installed browser/build.py browser/pyproject.toml \
		browser/openai-wheels.txt $(shell find browser/src -name '*.py')
	$(PY) browser/build.py
	touch $@

model: $(VENV)/.installed
	$(PY) -m models fetch $(DEFAULT_MODEL)

# The manifest is written last: its presence means the bundle is complete. Compiler sources newer than it
# (a pull that changed the kernels or the runtime) build it again.
$(DEFAULT_BUNDLE)/manifest.json: $(shell find compile models -name '*.py' -o -name '*.c' -o -name '*.h') | setup
	$(PY) -m compile $(DEFAULT_MODEL) --output $(DEFAULT_BUNDLE)

run: setup $(DEFAULT_BUNDLE)/manifest.json
	$(PY) -m static_server --bundles bundles

serve: setup $(DEFAULT_BUNDLE)/manifest.json
	$(PY) -m serve --bundles bundles --model $(notdir $(DEFAULT_BUNDLE))

test: setup
	npm test --prefix web
	$(PY) -m pytest

clean:
	rm -rf $(VENV) web/node_modules test-artifacts build
