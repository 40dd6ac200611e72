# Two commands matter: `make demo` (run the service on the built-in simulator) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench screenshot container-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m vedirect_async --config config.toml

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) bench/run_all.py

# Build the Docker image and run it for real (installs docker.io; needs root; ~2-3 min).
container-check: $(STAMP)
	PYTHON=$(PY) scripts/container-check

# the live page in headless Chromium (apt-get install -y chromium), 6 h of simulated history
screenshot: $(STAMP)
	mkdir -p docs
	VEDIRECT_SCREENSHOT=docs/screenshot.png VEDIRECT_SCREENSHOT_HOURS=6 \
		$(PY) -m pytest -q -p no:cacheprovider tests/test_page_chromium.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
