# Two commands on a fresh clone, nothing but python3 needed:
#   make demo   build .venv and run `compactor demo` end to end on an embedded S3 server
#   make test   build .venv with the test extra and run lint, type checks, the docs build and the test suite
#   make docs   build the documentation (docs/, Sphinx) into docs/_build/html, warnings as errors
# The everyday loop:
#   make check  lint, types, import contracts and the unit tier (no servers, no clusters)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# Pinned versions the suite was last run with; keeps fresh clones reproducible.
CONSTRAINTS := requirements/constraints.txt

.PHONY: demo test check unit lint pytest docs browser bench image image-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-demo: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) -e '.[demo]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) -e '.[demo,test,dev,docs]'
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/compactor demo

LINT_PATHS := $(wildcard compactor tests bench)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy compactor
	$(BIN)/lint-imports

pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

# The unit tier: every test that starts no server, cluster or process (tests/conftest.py
# marks the others e2e). Under two minutes on a 2-core machine.
unit: $(VENV)/.installed-test
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

check: lint unit

# The documentation: Markdown pages and the API reference from the docstrings (docs/conf.py
# says why Sphinx). No network at build time; every warning is an error; -E rereads every
# source, as a docstring edit leaves the pages that show it unchanged for an incremental build.
docs: $(VENV)/.installed-test
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

# Debian's chromium, for the test that opens report.html headless (playwright drives it; no
# browser is ever downloaded). Installed with apt-get where it is missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the report's browser test"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  else \
	    echo "chromium is missing and cannot be installed here (needs root and apt-get)" >&2; \
	  fi; }

test: lint docs browser pytest

# The image the chart runs (helm/Dockerfile), built with podman (docker where a daemon
# answers); where no registry serves the base image, a Debian base is built from this
# machine's apt sources first (helm/image/build-base.sh). IMAGE names the result.
IMAGE ?= localhost/compactor:dev

image:
	helm/image/build.sh $(IMAGE)

# The image in containers hardened as the chart's pods: --version, the demo, a scheduler,
# workers and a runner against a loopback S3 with workers lost mid-run, and the chart's
# runner pod through `podman kube play`. Builds the image first.
image-test: image $(VENV)/.installed-test
	COMPACTOR_IMAGE=$(IMAGE) COMPACTOR_ENGINE="$$(helm/image/podman.sh)" \
	  $(BIN)/pytest -p no:cacheprovider -m image tests/deploy/test_image.py $(PYTEST_ARGS)

# The large-scene benchmark (needs ../shared/data/rasterio-cc0/; 10-15 minutes).
bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench_large_scene.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output docs/_build .pytest_cache .mypy_cache .ruff_cache
