# Two commands on a fresh machine: `make course` runs every notebook, `make test` runs the tests.
# Both create .venv with pip from pyproject.toml the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medtl-installed

.PHONY: course test student grade smoke-gpu lab clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

course: $(STAMP)
	$(PY) -m medtl_helpers course notebooks --out runs/notebooks

# The tests and every notebook under nbval in the quick profile; the student copies (solutions
# replaced by stubs) are rebuilt and run too, with stand-in ImageNet weights, so every notebook
# runs a second time with them (tools/run_tests.sh says how).
test: $(STAMP) student
	PY=$(PY) tools/run_tests.sh

# The gpu profile's code paths on this machine's CPU: 224 px, its architectures and batch sizes,
# stand-in ImageNet weights, at most 64 images per split and one epoch per stage.
smoke-gpu: $(STAMP)
	$(PY) tests/standin_weights.py runs/standin-torch-home > /dev/null
	MEDTL_RUNS=$$(mktemp -d) TORCH_HOME=$(CURDIR)/runs/standin-torch-home MEDTL_PROFILE=gpu \
	MEDTL_MAX_IMAGES=64 MEDTL_MAX_EPOCHS=1 MEDTL_OFFLINE=1 MPLBACKEND=Agg \
	$(PY) -m medtl_helpers course notebooks --out runs/smoke-gpu

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
