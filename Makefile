# Each target bootstraps .venv idempotently from pyproject.toml's pinned ranges.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv system-packages serve test lint bench db site notebook expected vendor clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[site,test]'
	touch $(STAMP)

system-packages:
	bash .ci/system-packages

site: $(STAMP)
	$(PY) -m mkdocs build --strict --quiet

serve: $(STAMP) site
	$(PY) -m runner serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check runner tests bench code docker
	$(PY) -m mypy
	$(VENV)/bin/hadolint --failure-threshold warning docker/postgres/Dockerfile docker/runner/Dockerfile

test: $(STAMP) system-packages lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench

db: $(STAMP)
	$(PY) -m runner db

expected: $(STAMP)
	$(PY) -m runner expected --write

notebook: $(STAMP)
	$(PY) -m runner notebook

# The front-end files under docs/assets/vendor/ (and tests/browser/vendor/axe.min.js) are built
# from package-lock.json and committed: the site and the tests need no npm. Run this after
# changing package.json (`npm install --package-lock-only` first) to rebuild them.
vendor:
	npm ci --no-audit --no-fund
	node docs/assets/vendor/build.mjs

clean:
	rm -rf site test-artifacts .pytest_cache .mypy_cache .ruff_cache
