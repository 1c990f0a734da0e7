# Two commands for a fresh machine:
#   make demo   - install, train on the default dataset (the seeded demo shop), then serve
#   make test   - install and run the test suite
# Options: make demo DATASET=hm DATA=../shared/data/hm PORT=8000

PY ?= python3
VENV ?= .venv
DATASET ?= synthetic
DATA ?=
PORT ?= 8000
BIN := $(VENV)/bin
# Redis on the default port when it answers; otherwise the embedded in-process store.
REDIS_URL ?= $(shell $(PY) -c "import socket; s = socket.socket(); s.settimeout(0.3); print('redis://127.0.0.1:6379/0' if s.connect_ex(('127.0.0.1', 6379)) == 0 else '')")

.PHONY: install demo train serve test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

train: install
	RECO_REDIS_URL=$(REDIS_URL) $(BIN)/python -m training train --dataset $(DATASET) \
		$(if $(DATA),--data $(DATA)) $(if $(REDIS_URL),,--no-redis)

serve: install
	RECO_REDIS_URL=$(REDIS_URL) $(BIN)/python -m service serve --port $(PORT)

demo: train serve

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) artifacts/bundles
