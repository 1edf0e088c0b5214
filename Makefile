# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Everything else here is what they are made of.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WEBCHAT_VERSION := 4.18.1
WEBCHAT_JS := bot/web/static/vendor/webchat.js
AZURITE_VERSION := 3.37.0
AZURITE := build/azurite/node_modules/.bin/azurite-blob
DATA_DIR ?= data
SAMPLE_INDEX := $(DATA_DIR)/index.sqlite

.PHONY: run test lint typecheck pytest fuzz eval bench install install-dev webchat chromium redis azurite sample-index clean

run: install webchat sample-index
	RAGBOT_DATA_DIR=$(DATA_DIR) $(BIN)/ragbot serve

test: install-dev webchat chromium redis azurite lint typecheck pytest

# What running needs (`make run`); the development tools (pytest, ruff, mypy, playwright...) come only
# with `make test` and the other targets that use them.
install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Checks for pip, not python: Debian without python3-venv leaves a venv with no pip, mended once it is installed.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Microsoft's Web Chat bundle, from the npm registry (one self-contained file), served by the bot itself.
webchat: $(WEBCHAT_JS)

$(WEBCHAT_JS):
	mkdir -p $(dir $@) build/npm
	cd build/npm && npm pack --silent botframework-webchat@$(WEBCHAT_VERSION) >/dev/null
	tar -xzf build/npm/botframework-webchat-$(WEBCHAT_VERSION).tgz -C build/npm package/dist/webchat.js
	cp build/npm/package/dist/webchat.js $@

# Debian's Chromium for the browser test (Playwright's own browser download does not work offline).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Real storage servers for the state tests (tests/servers.py starts them): Debian's Redis, and Azurite,
# the Azure Storage emulator, from the npm registry into build/ (pinned).
redis:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

azurite: $(AZURITE)

$(AZURITE):
	mkdir -p build/azurite
	cd build/azurite && npm install --silent --no-audit --no-fund --prefix . azurite@$(AZURITE_VERSION)
	touch $@

sample-index: install
	RAGBOT_DATA_DIR=$(DATA_DIR) $(BIN)/ragbot index samples/helpdesk --target local

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -q

# The fuzz suites as `make test` runs them (derandomized, reproducible), but random and with ten times
# the examples (tests/fuzzing.py): run it now and then to look for new failures.
fuzz: install-dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -m reliability tests/reliability

eval: install sample-index
	RAGBOT_DATA_DIR=$(DATA_DIR) $(BIN)/python -m bench.eval

bench: install-dev webchat redis azurite sample-index
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache
