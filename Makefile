# Two commands matter: `make demo` (run the service on the built-in simulator) and `make test`.
#
# Python: the first of python3.13, python3.12, python3.11, python3 that runs and is 3.11 or newer
# (a pyenv shim for a version that is not selected does not run, so it is skipped). Choose one
# yourself with `make demo PYTHON=/path/to/python3.12`.
PYTHON_CANDIDATES := python3.13 python3.12 python3.11 python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; \
	done)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
# The demo needs only the runtime dependencies and runs from this folder (`python -m
# vedirect_async`): no build of the project itself, whose isolated setuptools build alone costs
# ~9 s. `make test` installs the project (editable) with the dev toolchain.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck check bench screenshot screenshot-docs container-check contract clean

$(RUNTIME): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "make: no Python 3.11 or newer found (tried $(PYTHON_CANDIDATES))." >&2; \
	  echo "make: choose one, e.g.  make demo PYTHON=/path/to/python3.12" >&2; exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 || { \
	  echo "make: PYTHON=$(PYTHON) is not a Python 3.11 or newer ($$($(PYTHON) --version 2>&1))." >&2; \
	  echo "make: choose one, e.g.  make demo PYTHON=/path/to/python3.12" >&2; exit 1; }
	@echo "make: $(VENV) with $$($(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])')"
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed: on Debian/Ubuntu install python3-venv," \
	       "or choose another Python: make demo PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
		| $(PY) -m pip install --quiet -r /dev/stdin
	touch $@

$(DEV): $(RUNTIME)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(RUNTIME)
	$(PY) -m vedirect_async --config config.toml

test: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile
	$(PY) -m pytest

lint: $(DEV)
	$(PY) -m ruff check .

typecheck: $(DEV)
	$(PY) -m mypy

check: test

bench: $(DEV)
	$(PY) bench/run_all.py

# Build the Docker image and run it for real (installs docker.io; needs root; ~2-3 min).
container-check: $(RUNTIME)
	PYTHON=$(PY) scripts/container-check

# the live page in headless Chromium (apt-get install -y chromium), 6 h of simulated history
# the live page in headless Chromium, 6 h of simulated history, every output healthy; writes
# build/screenshot.png (SCREENSHOT=path to choose); `make screenshot-docs` updates the README's
SCREENSHOT ?= build/screenshot.png
screenshot: $(DEV)
	mkdir -p $(dir $(SCREENSHOT))
	VEDIRECT_SCREENSHOT=$(SCREENSHOT) VEDIRECT_SCREENSHOT_HOURS=6 \
		$(PY) -m pytest -q -p no:cacheprovider tests/test_page_chromium.py
	@echo "screenshot: $(SCREENSHOT)"

screenshot-docs:
	$(MAKE) screenshot SCREENSHOT=docs/screenshot.png

# opt-in, not CI: Home Assistant's own code judges every MQTT discovery payload (docs/mqtt.md);
# installs homeassistant in its own Python 3.13 venv, several minutes the first time
contract: $(DEV)
	$(PY) scripts/ha-contract

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
