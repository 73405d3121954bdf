# Each target bootstraps .venv idempotently from pyproject.toml's pinned ranges.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv system-packages serve preview test test-content lint bench db site site-zensical notebook expected vendor clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[site,test,zensical]'
	touch $(STAMP)

system-packages:
	bash .ci/system-packages

site: $(STAMP)
	$(PY) -m mkdocs build --strict --quiet

# The same mkdocs.yml built by Zensical into site-zensical/ (see docs/maintainers.md for what differs).
site-zensical: $(STAMP)
	WORKSHOP_BUILD_DIR=site-zensical $(VENV)/bin/zensical build --clean -f mkdocs.yml

serve: $(STAMP) site
	$(PY) -m runner serve --host $(HOST) --port $(PORT)

# The site and the runner together, rebuilt as docs/, code/ and mkdocs.yml change.
preview: $(STAMP)
	$(PY) -m runner preview --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check runner tests bench code docker
	$(PY) -m mypy
	$(VENV)/bin/hadolint --failure-threshold warning docker/postgres/Dockerfile docker/runner/Dockerfile

test: $(STAMP) system-packages lint
	$(PY) -m pytest

# Content work (pages, samples, lessons): the checks that concern it, with no system
# packages and no browser (about a minute).
CONTENT_TESTS := tests/test_docs.py tests/test_samples.py tests/test_notebook.py tests/test_expected.py \
	tests/test_lessons.py tests/test_maintainer_mistakes.py tests/test_new_lesson.py
test-content: $(STAMP)
	$(PY) -m ruff check code
	$(PY) -m pytest $(CONTENT_TESTS)

bench: $(STAMP)
	$(PY) -m bench

db: $(STAMP)
	$(PY) -m runner db

# `make expected` records every sample's output; `make expected SAMPLES=chapter_05/03_pool` just that one.
expected: $(STAMP)
	$(PY) -m runner expected --write $(SAMPLES)

notebook: $(STAMP)
	$(PY) -m runner notebook

# The front-end files under docs/assets/vendor/ (and tests/browser/vendor/axe.min.js) are built
# from package-lock.json and committed: the site and the tests need no npm. Run this after
# changing package.json (`npm install --package-lock-only` first) to rebuild them.
vendor:
	npm ci --no-audit --no-fund
	node docs/assets/vendor/build.mjs

clean:
	rm -rf site site-zensical .cache test-artifacts .pytest_cache .mypy_cache .ruff_cache
