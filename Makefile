# The README's two commands: `make run` and `make test`. Both work on a fresh machine with only
# Python 3.11+ and make: they create .venv and install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format bench install install-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The panel's browser test drives Debian's Chromium and ChromeDriver, and the flow diagrams' test
# renders with Graphviz; installed once when missing (never a browser downloaded by a test tool).
# sudo only when not already root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v dot >/dev/null || \
		($(SUDO) apt-get update -qq && \
		 $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver graphviz >/dev/null)

run: install
	$(BIN)/bot db migrate
	$(BIN)/bot serve

test: install-test browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot
	$(BIN)/pytest
	$(BIN)/bot flows test

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The load benchmark (bench/): this bot beside the lean reference bot, same rates, one run.
# BENCH_DATABASE_URL=postgres://... runs it on PostgreSQL (that database is emptied first), and
# BOT_WORKERS=N as `bot serve --workers N`, and BENCH_BSUID=1 makes every customer one without a phone
# number (business-scoped user IDs only: load.py --bsuid).
bench: install-test
	BOT_SETTINGS=$(CURDIR)/tests/bench-settings.yaml PYTHON=$(CURDIR)/$(BIN)/python \
	BENCH_DATABASE_URL="$(BENCH_DATABASE_URL)" BOT_WORKERS="$(BOT_WORKERS)" BENCH_BSUID="$(BENCH_BSUID)" \
		bash bench/compare.sh $(RATES)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
