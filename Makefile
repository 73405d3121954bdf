# Each target bootstraps .venv idempotently from pyproject.toml's pinned ranges, with
# only the extras it uses: `make db` the runner alone, `make serve` the site builder
# too, `make test` (and `make venv`) everything. One stamp per set of extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUNTIME := $(VENV)/.installed-runtime
STAMP_SITE := $(VENV)/.installed-site
STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv venv-serve venv-db system-packages image-packages serve preview test test-content lint bench db \
	site site-zensical notebook expected vendor images images-test clean

# $(1): the extras, e.g. [site]
define install
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.$(1)'
	touch $@
endef

$(STAMP_RUNTIME): pyproject.toml
	$(call install,)

$(STAMP_SITE): pyproject.toml
	$(call install,[site])

ALL_EXTRAS := [site,test,zensical]
$(STAMP): pyproject.toml
	$(call install,$(ALL_EXTRAS))

venv: $(STAMP)

venv-serve: $(STAMP_SITE)

venv-db: $(STAMP_RUNTIME)

system-packages:
	bash .ci/system-packages

image-packages:
	bash .ci/image-packages

site: $(STAMP_SITE)
	$(PY) -m mkdocs build --strict --quiet

# The same mkdocs.yml built by Zensical into site-zensical/ (see docs/maintainers.md for what differs).
site-zensical: $(STAMP)
	WORKSHOP_BUILD_DIR=site-zensical $(VENV)/bin/zensical build --clean -f mkdocs.yml

serve: $(STAMP_SITE) site
	$(PY) -m runner serve --host $(HOST) --port $(PORT)

# The site and the runner together, rebuilt as docs/, code/ and mkdocs.yml change.
preview: $(STAMP_SITE)
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
	tests/test_lessons.py tests/test_maintainer_mistakes.py tests/test_new_lesson.py \
	tests/test_exercises.py tests/test_exercise_checks.py
test-content: $(STAMP)
	$(PY) -m ruff check code
	$(PY) -m pytest $(CONTENT_TESTS)

bench: $(STAMP)
	$(PY) -m bench

db: $(STAMP_RUNTIME)
	$(PY) -m runner db

# `make expected` records every sample's output; `make expected SAMPLES=chapter_05/03_pool` just that one.
expected: $(STAMP_RUNTIME)
	$(PY) -m runner expected --write $(SAMPLES)

notebook: $(STAMP_SITE)
	$(PY) -m runner notebook

# The front-end files under docs/assets/vendor/ (and tests/browser/vendor/axe.min.js) are built
# from package-lock.json and committed: the site and the tests need no npm. Run this after
# changing package.json (`npm install --package-lock-only` first) to rebuild them.
vendor:
	npm ci --no-audit --no-fund
	node docs/assets/vendor/build.mjs

# Both images, with podman (or Docker), from the official bases or, where no registry
# answers, from local ones made out of Debian packages (docker/images.py).
images:
	$(PYTHON) docker/images.py build

# The built images run for real: the runner alone, the learners' PostgreSQL, compose.
images-test: $(STAMP) images
	$(PY) -m pytest -m images tests/test_images.py

clean:
	rm -rf site site-zensical .cache test-artifacts .pytest_cache .mypy_cache .ruff_cache
