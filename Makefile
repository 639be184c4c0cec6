# samtrack: `make demo` runs the bundled demo, `make test` runs the test suite.
# Both create .venv and install everything on first use (torch first, then sam2 without its
# CUDA extension, then samtrack itself), so a fresh clone needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.samtrack-installed

.PHONY: demo test test-fast lint install clean

demo: $(STAMP)
	$(VENV)/bin/samtrack demo

test: $(STAMP)
	$(VENV)/bin/pytest -q

test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 $(PIP) install --no-build-isolation sam2==1.1.0
	$(PIP) install -e '.[dev,live,bench,ray]'
	# a real browser for the live page's test (Debian's chromium; playwright drives it)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium not installed: the browser test of samtrack live will be skipped"
	touch $(STAMP)

clean:
	rm -rf $(VENV) demo_output runs .pytest_cache .ruff_cache
