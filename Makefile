# The two commands a new user needs: `make run` and `make test`.
# Both create/refresh the virtual environment (.venv) themselves.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Containers. MTLSDEMO_BASE_IMAGE picks the base; without a registry, `make base-image`
# builds one with debootstrap and `MTLSDEMO_BASE_IMAGE=mtlsdemo-base:bookworm` uses it.
MTLSDEMO_BASE_IMAGE ?= python:3.11-slim-bookworm
MTLSDEMO_IMAGE      ?= mtlsdemo:dev
COMPOSE             := docker-compose -f deploy/compose/docker-compose.yml -p mtlsdemo

.PHONY: run test test-unit test-integration test-containers lint protos bench clean \
        base-image image compose-up compose-down

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

test-containers: $(STAMP)
	$(PY) -m pytest tests/containers $(ARGS)

base-image:  ## Debian bookworm + python3 via debootstrap + docker import (no registry needed)
	deploy/docker/build-base-image.sh mtlsdemo-base:bookworm

image:  ## the one image for every role
	docker build -f deploy/docker/Dockerfile --build-arg BASE_IMAGE=$(MTLSDEMO_BASE_IMAGE) -t $(MTLSDEMO_IMAGE) .
	@docker image inspect -f '{{.Size}}' $(MTLSDEMO_IMAGE) | awk '{printf "$(MTLSDEMO_IMAGE): %.0f MB\n", $$1/1e6}'

compose-up: image  ## the pods on docker-compose; waits for health, prints where things are
	MTLSDEMO_IMAGE=$(MTLSDEMO_IMAGE) $(COMPOSE) up -d
	@for i in $$(seq 1 60); do \
	  n=$$($(COMPOSE) ps | grep -c '(healthy)'); [ "$$n" -ge 5 ] && break; sleep 2; done
	@$(COMPOSE) ps
	@echo "gateway:  127.0.0.1:50052 (gRPC mTLS; docker-compose -f deploy/compose/docker-compose.yml -p mtlsdemo run --rm client balance ACCOUNT)"
	@echo "metrics:  http://127.0.0.1:9102/metrics (gateway)  http://127.0.0.1:9101/metrics (ledger)"
	@echo "sidecars: http://127.0.0.1:9901/status (gateway-sidecar)  http://127.0.0.1:9902/status (ledger-sidecar)"

compose-down:
	$(COMPOSE) down -v

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests tools

protos: $(STAMP)  ## regenerate services/mtlsdemo/_generated from protos/
	$(PY) tools/gen_protos.py

bench: $(STAMP)  ## speed as ratios against references measured in the same run
	$(VENV)/bin/mtlsdemo bench $(ARGS)

clean:
	rm -rf $(VENV) var certs/ca certs/*/ .pytest_cache .ruff_cache .hypothesis
