# Two commands on a fresh machine: `make course` runs every notebook, `make test` runs the tests.
# Both create .venv with pip from pyproject.toml the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medtl-installed
# the notebooks `make lab` opens: the instructor's, or on the student branch the student copies
NOTEBOOKS := $(if $(wildcard notebooks/*.ipynb),notebooks,student)
# make venv WHEELS=folder: install from a wheelhouse that `make wheels` built, with no package
# index (a classroom without a network, docs/TEACHING.md section 6). Every target accepts it.
WHEELS ?=
PIP := $(PY) -m pip --disable-pip-version-check
# What the editable install builds with (pyproject.toml's [build-system] requires): offline,
# pip's isolated build environment finds it only in the wheelhouse.
BUILD_REQUIRES := 'setuptools>=77'

.PHONY: course test student grade smoke-gpu lab clean venv wheels site site-screenshot

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet$(if $(WHEELS), --no-index --find-links $(WHEELS)) -e '.[dev]'
	touch $(STAMP)

# make wheels: on a machine with a network, every wheel the course installs, its build backend
# included, into wheels/: for machines of the same operating system, CPU architecture and Python
# minor version, which then run `make venv WHEELS=wheels`.
wheels: $(STAMP)
	$(PIP) wheel --quiet -w wheels '.[dev]' $(BUILD_REQUIRES)

course: $(STAMP)
	$(PY) -m medtl_helpers course notebooks --out runs/notebooks

# make site [PROFILE=quick]: the course as a static website in site/ (tools/build_site.py, README
# "The course as a website"). It never runs a notebook: it shows the executed copies that `make
# course` wrote to runs/notebooks/. PROFILE=X runs the course in profile X first.
site: $(STAMP)
	$(if $(PROFILE),MEDTL_PROFILE=$(PROFILE) $(PY) -m medtl_helpers course notebooks --out runs/notebooks)
	$(PY) tools/build_site.py

# make site-screenshot [SITE=folder]: README's picture, docs/images/site-04.png: 04's page of the
# site `make site` built, scrolled to its first figure, in Debian's chromium
# (tools/site_browser.py). It builds nothing.
site-screenshot: $(STAMP)
	$(PY) tools/site_browser.py screenshot $(or $(SITE),site) docs/images/site-04.png

# The tests and every notebook under nbval in the quick profile; every notebook runs a second time
# through the grader, as its student copy with the reference solutions and stand-in ImageNet
# weights (tools/run_tests.sh says how).
test: $(STAMP) student
	PY=$(PY) tools/run_tests.sh

# The gpu profile's code paths on this machine's CPU: 224 px, its architectures and batch sizes,
# stand-in ImageNet weights, one epoch per stage and the quick profile's loop sizes. 00-07 take at
# most 64 images per split; 08 and 09 deal the data out to nine sites with four roles each, so
# they take 800 (what the quick profile takes), else a site has too few patients for its roles.
smoke-gpu: $(STAMP)
	$(PY) tests/standin_weights.py runs/standin-torch-home > /dev/null
	export MEDTL_RUNS=$$(mktemp -d) TORCH_HOME=$(CURDIR)/runs/standin-torch-home MEDTL_PROFILE=gpu \
	MEDTL_MAX_EPOCHS=1 MEDTL_OFFLINE=1 MPLBACKEND=Agg; \
	MEDTL_MAX_IMAGES=64 $(PY) -m medtl_helpers course notebooks --out runs/smoke-gpu/cap64 \
	--only 00 01 02 03 04 05 06 07; first=$$?; \
	MEDTL_MAX_IMAGES=800 $(PY) -m medtl_helpers course notebooks --out runs/smoke-gpu/cap800 \
	--only 08 09 && exit $$first

student: $(STAMP)
	$(PY) -m medtl_helpers student notebooks -o student

# make grade SUBMISSIONS=folder [NOTEBOOK=01] [DATA=path]: run and score handed-in student
# notebooks into grades/ (docs/TEACHING.md §4), on the quick profile's synthetic X-rays or on DATA.
# Student code runs with your permissions: grade in the container that docker/grade.Dockerfile builds.
grade: $(STAMP)
	$(if $(SUBMISSIONS),,$(error name the handed-in notebooks: make grade SUBMISSIONS=folder))
	$(PY) -m medtl_helpers grade $(SUBMISSIONS) --out grades $(if $(NOTEBOOK),--notebook $(NOTEBOOK)) \
	$(if $(DATA),--data $(DATA))

# make lab [LAB_FLAGS="--no-browser --allow-root"]: JupyterLab on notebooks/ (as root, or on a server)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(NOTEBOOKS)/ $(LAB_FLAGS)

# student/ is made from notebooks/ here; on the student branch (no notebooks/) it is the students' work
clean:
	rm -rf runs $(if $(wildcard notebooks/*.ipynb),student) .pytest_cache .ruff_cache

# The branch the Colab badges open (links.STUDENT_BRANCH): HEAD's files less notebooks/, tests/ and
# docs/, plus student copies of HEAD's notebooks, committed without a checkout. Then:
# git push origin student (docs/TEACHING.md §1).
.PHONY: student-branch
student-branch: $(STAMP)
	$(PY) -m medtl_helpers student notebooks -o student --publish-branch
