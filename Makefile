# Two commands on a fresh machine: `make course` runs every notebook, `make test` runs the tests.
# Both create .venv with pip from pyproject.toml the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medtl-installed
TEST_ENV := MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg

.PHONY: course test student grade lab clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

course: $(STAMP)
	$(PY) -m medtl_helpers course notebooks --out runs/notebooks

# Student copies (solutions replaced by stubs) are rebuilt and run under nbval too.
test: $(STAMP) student
	MEDTL_RUNS=$$(mktemp -d) $(TEST_ENV) $(PY) -m pytest tests notebooks student --nbval-lax --nbval-current-env -p no:cacheprovider --durations=12

student: $(STAMP)
	$(PY) -m medtl_helpers student notebooks -o student

# make grade SUBMISSIONS=folder [NOTEBOOK=01]: run and score handed-in student notebooks into
# grades/ (docs/TEACHING.md §4; student code runs with your permissions: use a container).
grade: $(STAMP)
	$(if $(SUBMISSIONS),,$(error name the handed-in notebooks: make grade SUBMISSIONS=folder))
	$(PY) -m medtl_helpers grade $(SUBMISSIONS) --out grades $(if $(NOTEBOOK),--notebook $(NOTEBOOK))

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf runs student .pytest_cache .ruff_cache
