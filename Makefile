# plantwatch — the two commands of the README, and the set-up they share.
#   make demo   the plant in a box: simulator → agent → Mosquitto → gateway → Tryton (real ERP), with an MES
#   make test   the whole suite (lint, format check, pytest with a real Mosquitto and a real Tryton)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" != 0 ] && command -v sudo)

.PHONY: setup demo test lint models evaluate clean mosquitto browser bench-web

setup: $(VENV)/.installed mosquitto

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "plantwatch needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,tryton]'
	@touch $@

mosquitto:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "Mosquitto is missing: installing it from the distribution's packages"; \
		( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mosquitto >/dev/null ) \
		|| { echo "Could not install Mosquitto. Install it yourself (apt-get install mosquitto) and run make again."; exit 1; }; \
	else echo "Mosquitto is missing and apt-get is not available: install the mosquitto broker and run make again."; exit 1; fi

# The web page's tests drive a headless Chromium through its WebDriver, both from the distribution.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "Chromium or its driver is missing: installing them from the distribution's packages"; \
		( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null ) \
		|| { echo "Could not install Chromium. Install it yourself (apt-get install chromium chromium-driver) and run make again."; exit 1; }; \
	else echo "Chromium and chromedriver are missing and apt-get is not available: install them and run make again."; exit 1; fi

# make demo DEMO_FLAGS=--keep-running keeps the plant and its web page up after the checks (Ctrl-C ends it)
DEMO_FLAGS ?=
demo: setup
	$(BIN)/python -m plantwatch.simulators.demo $(DEMO_FLAGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup browser lint
	$(BIN)/pytest

# Rebuild the shipped default models (needs the [train] extra: pip install -e '.[train]').
models: setup
	$(BIN)/plantwatch-models build

# Real-data evaluation of the shipped int8 models (not part of make test; needs [train] for the
# classifier trained on CWRU's training loads: without TensorFlow add EVALUATE_FLAGS=--no-train).
DATA ?= ../shared/data
EVALUATE_FLAGS ?=
evaluate: setup
	$(BIN)/plantwatch-models evaluate cwru $(DATA)/cwru --train-loads 0 --test-loads 1,2,3 $(EVALUATE_FLAGS)
	$(BIN)/plantwatch-models evaluate cwru $(DATA)/cwru --train-loads 0,1,2,3 --test-loads 0,1,2,3 \
		--train-sizes 0.007,0.021 --test-sizes 0.014 $(EVALUATE_FLAGS)
	$(BIN)/plantwatch-models evaluate run-to-failure $(DATA)/femto_pronostia/Learning_set/Bearing3_1

# The web page's benchmark (headless Chromium; not part of make test): BENCH_FLAGS=--json for one JSON line
BENCH_FLAGS ?=
bench-web: setup browser
	$(BIN)/python bench/web.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
