# The two commands a new user needs: `make run` and `make test`.
# Both create/refresh the virtual environment (.venv) themselves.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-unit test-integration lint protos bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## bootstrap certs, start ledger + gateway on 127.0.0.1, send traffic, Ctrl-C stops
	$(VENV)/bin/mtlsdemo run $(ARGS)

test: $(STAMP)  ## every tier; tiers missing a tool skip with the reason (MTLSDEMO_REQUIRE makes them fail)
	$(PY) -m pytest $(ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit $(ARGS)

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests tools

protos: $(STAMP)  ## regenerate services/mtlsdemo/_generated from protos/
	$(PY) tools/gen_protos.py

bench: $(STAMP)  ## speed as ratios against references measured in the same run
	$(VENV)/bin/mtlsdemo bench $(ARGS)

clean:
	rm -rf $(VENV) var certs/ca certs/*/ .pytest_cache .ruff_cache .hypothesis
