# shopsync: `make demo` runs the main job on real data; `make test` runs the test suite.
# Both create .venv and install pinned requirements first, so they work on a fresh clone.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/dev.txt | sha1sum | cut -c1-12)

# Tests run against the local Postgres unless DATABASE_URL says otherwise (CI sets its own).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/shopsync

.PHONY: setup demo test lint bench-ingest clean

setup: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: setup
	$(PY) demo/run.py

test: setup
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} SECRET_KEY=$${SECRET_KEY:-test-only-insecure-key} \
		$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench-ingest: setup
	$(PY) bench/ingest.py

clean:
	rm -rf var/demo artifacts bench/results
