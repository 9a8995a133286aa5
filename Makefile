# Two commands on a fresh machine: `make course` runs every notebook, `make test` runs the tests.
# Both create .venv with pip from pyproject.toml the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medtl-installed
TEST_ENV := MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg

.PHONY: course test lab clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

course: $(STAMP)
	$(PY) -m medtl_helpers course notebooks --out runs/notebooks

test: $(STAMP)
	MEDTL_RUNS=$$(mktemp -d) $(TEST_ENV) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider --durations=12

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf runs student .pytest_cache .ruff_cache
