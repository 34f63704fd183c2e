# The README's two commands. Each creates .venv and installs what it needs on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AXE := tests/node_modules/axe-core/axe.min.js

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench clean chromium spamassassin lock

demo: $(STAMP)
	$(BIN)/newsletter demo

# The whole suite twice: on SQLite files, then on the PostgreSQL server at TEST_POSTGRES (each test
# gets its own database there; tests marked sqlite_pass_only, which judge HTML no store changes, are
# left out). A PostgreSQL that cannot be reached fails the second pass.
TEST_POSTGRES ?= postgresql+psycopg://postgres@127.0.0.1:5432/newsletter_test
# One pytest-xdist worker per core; a test file stays on one worker (its module fixtures, such as a
# served app or a browser, are made once).
PYTEST_ARGS ?= -n auto --dist loadfile

test: $(STAMP) chromium spamassassin $(AXE)
	$(BIN)/ruff check newsletter tests bench scheduler.py
	$(BIN)/pytest $(PYTEST_ARGS)
	bash .ci/postgres
	NEWSLETTER_TEST_DATABASE=$(TEST_POSTGRES) $(BIN)/pytest $(PYTEST_ARGS)

# The browser tests drive Debian's chromium through Playwright (no browser download).
chromium:
	@test -x /usr/bin/chromium || { echo "Installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get install -y -q chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }; }

# The spam-score tests run Debian's SpamAssassin offline (`spamassassin -t -L`).
spamassassin:
	@command -v spamassassin >/dev/null || { echo "Installing Debian's spamassassin for the spam-score tests"; \
		$(SUDO) apt-get install -y -q spamassassin || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q spamassassin; }; }

# axe-core, which the accessibility tests inject into Chromium: the version pinned in
# tests/package-lock.json, in tests/node_modules (git-ignored).
$(AXE): tests/package.json tests/package-lock.json
	@command -v npm >/dev/null || { echo "Installing Debian's npm for axe-core"; \
		$(SUDO) apt-get install -y -q npm || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q npm; }; }
	npm ci --prefix tests --no-audit --no-fund
	@touch $(AXE)

lint: $(STAMP)
	$(BIN)/ruff check newsletter tests bench scheduler.py
	$(BIN)/ruff format --check newsletter tests bench scheduler.py

bench: $(STAMP)
	$(BIN)/python bench/render.py

# Installs come from requirements.lock: the exact versions the suite was run with, each checked by its
# hash, so a fresh machine next month gets what was tested. `make lock` refreshes it from pyproject.toml.
# Debian's python3 lacks ensurepip unless python3-venv is installed: fall back to a venv without pip
# and let the system pip install into it.
PIP_INSTALL = install --quiet --require-hashes --no-deps -r requirements.lock
PIP_PROJECT = install --quiet --no-deps --no-build-isolation -e .

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); $(PYTHON) -m venv --without-pip $(VENV); }
	@if $(BIN)/python -m pip --version >/dev/null 2>&1; then \
		$(BIN)/python -m pip $(PIP_INSTALL) && $(BIN)/python -m pip $(PIP_PROJECT); \
	else \
		$(PYTHON) -m pip --python $(BIN)/python $(PIP_INSTALL) && $(PYTHON) -m pip --python $(BIN)/python $(PIP_PROJECT); \
	fi
	@# The package's bytecode, written once: a process that may not write it (PYTHONDONTWRITEBYTECODE,
	@# a read-only checkout) would otherwise compile every module it imports at each start (~90 ms).
	$(BIN)/python -m compileall -q newsletter
	@touch $(STAMP)

# Re-resolve pyproject.toml's ranges (runtime, the dev extras and the build backend) against PyPI into
# requirements.lock, with the hashes of every file; commit the result with the change that needed it.
LOCK_VENV := .venv-lock
lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet pip-tools==7.6.2; }
	$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --extra dev --all-build-deps \
		--strip-extras --index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links --upgrade \
		--output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .ruff_cache
