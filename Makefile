# Two commands set everything up on a fresh machine:
#   make test     create .venv if needed, install the project with its dev tools, run every check
#   make course   same set-up, then run the whole course in batch (PROFILE=auto|smoke|quick|full)
# and, for working interactively:
#   make lab      JupyterLab, rooted at the repository, open on notebooks/
#   make outputs  re-execute every notebook in place so its stored outputs match the code, and copy
#                 its code cells and outputs into the Chinese edition (notebooks/zh), which is never
#                 executed itself: both editions stay in step (python -m course_utils editions check)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamp is newer than pyproject.toml once the install succeeded: no reinstall when nothing changed.
STAMP := $(VENV)/.installed-stamp
PROFILE ?= auto
OUTPUTS_PROFILE ?= quick
RUN_ARGS ?=
# Extra JupyterLab options, e.g. LAB_ARGS="--no-browser --ip=0.0.0.0 --port=8888". As root (in a
# container, say) JupyterLab refuses to start unless told --allow-root: the lab target adds it.
LAB_ARGS ?=
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: setup test lint course lab outputs images book assignments grade clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 10) <= sys.version_info[:2] < (3, 14), "Python 3.10 to 3.13 is needed, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check course_utils course_tools tests benchmarks notebooks book grading
	$(BIN)/ruff format --check course_utils course_tools tests benchmarks notebooks book grading

# Three pytest processes (pytest-xdist), each taking whole test files (a notebook's cells share one
# kernel). Many tests wait on a kernel or a subprocess, so three keep two cores busy: on the 2-core Xeon
# the tests took 4.3 to 5.0 min (six runs, 2026-12-07), against 7.6 in one process. TEST_PROCESSES=1: one.
TEST_PROCESSES ?= 3

test: lint
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile

course: setup
	$(BIN)/python -m course_utils run --profile $(PROFILE) $(RUN_ARGS)

# The server's root is the repository (so that links such as ../images/... resolve, and relative paths in
# COURSE_DATA_DIR or COURSE_OUTPUT_DIR are read from here, as everywhere else); it opens on notebooks/.
lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

# The English notebooks only: each one rewritten is synced into notebooks/zh/ by the same command.
outputs: setup
	$(BIN)/python -m course_utils outputs --profile $(OUTPUTS_PROFILE)

images: setup
	$(BIN)/python -m course_tools.figures

# The course as a website, from the notebooks' stored outputs (nothing is executed), offline: the English
# edition in build/book/, the Chinese one in build/book/zh/ (book/conf.py). To read it:
# python -m http.server --directory build/book, then http://localhost:8000/ (python book/check.py checks it
# in headless Chromium).
book: setup
	$(BIN)/python book/build.py build/book

# A teacher's commands (nbgrader; grading/): each notebook's exercises as an assignment, in
# build/assignments/en and build/assignments/zh (student versions in release/, teacher versions in source/);
# then the grading of a class, CLASS=<student>/<assignment>/<notebook>.ipynb, into that edition's folder:
# grades/<assignment>.csv and a feedback file per student in feedback/.
EDITION ?= en
CLASS ?= build/assignments/$(EDITION)/submitted
assignments: setup
	$(BIN)/python -m grading build

grade: setup
	$(BIN)/python -m grading grade $(CLASS) --edition $(EDITION)

clean:
	rm -rf .pytest_cache .ruff_cache build *.egg-info
