# The two commands a new user needs: `make run` and `make test`.
# Both create/refresh the virtual environment (.venv) themselves.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# what running needs (make run, make console): the package and its runtime deps only;
# STAMP adds the dev tools (pytest, mypy, Playwright, testcontainers: ~440 MB more)
RUN_STAMP := $(VENV)/.run-stamp

# Containers. MTLSDEMO_BASE_IMAGE picks the base; without a registry, `make base-image`
# builds one with debootstrap and `MTLSDEMO_BASE_IMAGE=mtlsdemo-base:bookworm` uses it.
MTLSDEMO_BASE_IMAGE ?= python:3.11-slim-bookworm
MTLSDEMO_IMAGE      ?= mtlsdemo:dev
# MTLSDEMO_IDENTITIES=workload-api: identities from a SPIFFE Workload API agent
# (short-lived SVIDs) instead of the bootstrap's files, on compose and Kubernetes
# MTLSDEMO_KEY_TYPE=ml-dsa-65: the whole mesh on ML-DSA identities (post-quantum)
MTLSDEMO_IDENTITIES ?= files
MTLSDEMO_KEY_TYPE   ?= ecdsa-p256
COMPOSE             := docker-compose -f deploy/compose/docker-compose.yml \
                       $(if $(filter workload-api,$(MTLSDEMO_IDENTITIES)),-f deploy/compose/workload-api.yml) \
                       $(if $(filter ml-dsa-65,$(MTLSDEMO_KEY_TYPE)),-f deploy/compose/post-quantum.yml) -p mtlsdemo

.PHONY: help check fmt lock lock-upgrade compiled test-compiled run test test-unit test-integration test-containers test-browser screenshots console lint typecheck protos prometheusrule reference bench perf-doc walkthrough clean \
        base-image image compose-up compose-down kind-up kind-down minikube-up minikube-down \
        k8s-verify k8s-cli-cert k8s-rotate-ca test-deploy test-pods test-repeat

# Installs come from the hash-locked sets in requirements/ (`make lock`): a fresh machine
# gets exactly the tested versions, and pip refuses any file whose hash differs.
LOCKED := --require-hashes --only-binary=:all:
$(RUN_STAMP): pyproject.toml requirements/runtime.lock
	@tools/ensure_venv.sh $(PYTHON) $(VENV)
	$(PY) -m pip install --quiet $(LOCKED) -r requirements/runtime.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml requirements/dev.lock
	@tools/ensure_venv.sh $(PYTHON) $(VENV)
	$(PY) -m pip install --quiet $(LOCKED) -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP) $(RUN_STAMP)

PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-header $(LOCK_ARGS)
lock: $(STAMP)  ## regenerate requirements/*.lock (hashes) from pyproject.toml; a test fails when they are stale
	$(PIP_COMPILE) -o requirements/runtime.lock pyproject.toml requirements/build.in
	$(PIP_COMPILE) --extra dev -o requirements/dev.lock pyproject.toml requirements/build.in
	$(PIP_COMPILE) -o requirements/sbom.lock requirements/sbom.in
	$(PIP_COMPILE) -o requirements/compile.lock requirements/compile.in

lock-upgrade:  ## every locked version to the newest allowed, then `make test`
	$(MAKE) lock LOCK_ARGS=--upgrade

help:  ## this list: every target with a one-line description
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## /\1\t/' | \
	  awk -F'\t' '{ printf "  make %-18s %s\n", $$1, $$2 }'

check: lint typecheck test-unit  ## the fast loop before a commit: ruff, format check, mypy, the unit tier (~40 s)

fmt: $(STAMP)  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix services tests tools
	$(VENV)/bin/ruff format services tests tools

run: $(RUN_STAMP)  ## bootstrap certs, start ledger + gateway on 127.0.0.1, send traffic, Ctrl-C stops
	$(VENV)/bin/mtlsdemo run $(ARGS)

test: $(STAMP)  ## every tier; tiers missing a tool skip with the reason (MTLSDEMO_REQUIRE makes them fail)
	$(PY) -m pytest $(ARGS)

test-unit: $(STAMP)  ## the unit tier alone (sans-I/O core, fuzzers, vectors, lint; ~30 s)
	$(PY) -m pytest tests/unit $(ARGS)

compiled: $(STAMP)  ## the handshake core and verifier compiled with mypyc into build/compiled (needs gcc)
	$(PY) tools/build_compiled.py

test-compiled: compiled  ## the unit tier against the compiled build (CI runs both builds)
	PYTHONPATH=build/compiled MTLSDEMO_EXPECT_BUILD=compiled $(PY) -m pytest tests/unit $(ARGS)

test-integration: $(STAMP)  ## real processes on 127.0.0.1 (~5 min)
	$(PY) -m pytest tests/integration $(ARGS)

# flake hunt: N back-to-back runs of the unit and integration tiers, failures per test
N ?= 20
TIERS ?= tests/unit tests/integration
test-repeat: $(STAMP)  ## flake hunt: N=20 back-to-back runs of TIERS, failures per test
	$(PY) tools/test_repeat.py --runs $(N) $(TIERS)

test-deploy: $(STAMP)  ## manifests rendered and checked offline (kustomize, schemas, rules)
	$(PY) -m pytest tests/deploy $(ARGS)

test-containers: $(STAMP)  ## the image, docker-compose and testcontainers (needs Docker)
	$(PY) -m pytest tests/containers $(ARGS)

test-pods: $(STAMP)  ## the rendered kind overlay run as pods on Docker with the kubelet's rules
	$(PY) -m pytest tests/pods $(ARGS)

test-browser: $(STAMP)  ## the web console in Debian's chromium (apt-get install chromium)
	$(PY) -m pytest tests/browser $(ARGS)

screenshots: $(STAMP)  ## the README's console screenshots, from the browser tests against a real run
	MTLSDEMO_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser -q $(ARGS)

console: $(RUN_STAMP)  ## the console alone, for a mesh started elsewhere (`make run` starts its own)
	$(VENV)/bin/mtlsdemo console $(ARGS)

base-image:  ## Debian bookworm + python3 via debootstrap + docker import (no registry needed)
	deploy/docker/build-base-image.sh mtlsdemo-base:bookworm

image:  ## the one image for every role
	@deploy/docker/check-base-image.sh $(MTLSDEMO_BASE_IMAGE)
	docker build -f deploy/docker/Dockerfile --build-arg BASE_IMAGE=$(MTLSDEMO_BASE_IMAGE) \
	  --build-arg SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 1) -t $(MTLSDEMO_IMAGE) .
	@deploy/docker/image-report.sh $(MTLSDEMO_IMAGE)

compose-up: image  ## the pods on docker-compose; waits for health, prints where things are
	@case "$(MTLSDEMO_IDENTITIES)" in files|workload-api) ;; *) \
	  echo "error: MTLSDEMO_IDENTITIES=$(MTLSDEMO_IDENTITIES): give files (the default) or workload-api" >&2; exit 2;; esac
	@case "$(MTLSDEMO_KEY_TYPE)/$(MTLSDEMO_IDENTITIES)" in ecdsa-p256/*|ml-dsa-65/files) ;; ml-dsa-65/*) \
	  echo "error: MTLSDEMO_KEY_TYPE=ml-dsa-65 takes the bootstrap's files; drop MTLSDEMO_IDENTITIES=$(MTLSDEMO_IDENTITIES)" >&2; exit 2;; *) \
	  echo "error: MTLSDEMO_KEY_TYPE=$(MTLSDEMO_KEY_TYPE): give ecdsa-p256 (the default) or ml-dsa-65 (the whole mesh post-quantum)" >&2; exit 2;; esac
	MTLSDEMO_IMAGE=$(MTLSDEMO_IMAGE) $(COMPOSE) up -d
	@for i in $$(seq 1 60); do \
	  n=$$($(COMPOSE) ps | grep -c '(healthy)'); [ "$$n" -ge 6 ] && break; sleep 2; done
	@$(COMPOSE) ps
	@echo "gateway:  127.0.0.1:50052 (gRPC mTLS; docker-compose -f deploy/compose/docker-compose.yml -p mtlsdemo run --rm client balance ACCOUNT)"
	@echo "console:  http://127.0.0.1:8080/ (the mesh, handshake ladders, certificates, failures)"
	@echo "metrics:  http://127.0.0.1:9102/metrics (gateway)  http://127.0.0.1:9101/metrics (ledger)"
	@echo "sidecars: http://127.0.0.1:9901/status (gateway-sidecar)  http://127.0.0.1:9902/status (ledger-sidecar)"
	@echo "break it: mtlsdemo break --compose mtlsdemo foreign-ca (from the host, in the clone; see --list)  tour: mtlsdemo tour --compose mtlsdemo"
	@if [ "$(MTLSDEMO_IDENTITIES)" = workload-api ]; then \
	  echo "agent:    http://127.0.0.1:9910/status (the Workload API: each SVID, its renewal, its rotations)"; fi

compose-down:  ## stop the compose project
	$(COMPOSE) down -v

# Kubernetes (needs kind or minikube, and kubectl; verified offline here, see README).
# deploy/k8s/up.sh pins the cluster version, targets its own context, deploys the image
# just built (content-addressed tag) and ends with a smoke call through the mesh.
KUBECTL     ?= kubectl
NS          := mtlsdemo
# the cluster the k8s-* targets talk to; minikube: K8S_CONTEXT=mtlsdemo
K8S_CONTEXT ?= kind-mtlsdemo

kind-up: image  ## kind cluster (pinned), image loaded, deployed, smoke call through the mesh
	MTLSDEMO_IMAGE=$(MTLSDEMO_IMAGE) KUBECTL=$(KUBECTL) deploy/k8s/up.sh kind

kind-down:  ## delete the kind cluster
	kind delete cluster --name mtlsdemo

minikube-up: image  ## the same on minikube (profile mtlsdemo, Calico enforces NetworkPolicy)
	MTLSDEMO_IMAGE=$(MTLSDEMO_IMAGE) KUBECTL=$(KUBECTL) deploy/k8s/up.sh minikube

minikube-down:  ## delete the minikube profile
	minikube delete -p mtlsdemo

# one CA rollover stage with the image the cluster runs: STAGE=plan|prepare|switch|finish
K8S_CLUSTER ?= kind
STAGE       ?= plan
k8s-rotate-ca:
	KUBECTL=$(KUBECTL) deploy/k8s/up.sh $(K8S_CLUSTER) rotate-ca $(STAGE)

k8s-verify:  ## the on-cluster checklist: a pass/fail table of what only a cluster can prove
	KUBECTL=$(KUBECTL) deploy/k8s/verify-on-cluster.sh $(K8S_CONTEXT)

k8s-cli-cert:
	mkdir -p certs/k8s-cli
	for k in tls.crt tls.key ca.crt; do \
	  $(KUBECTL) --context $(K8S_CONTEXT) -n $(NS) get secret mtlsdemo-cli-tls -o go-template="{{index .data \"$$k\" | base64decode}}" > certs/k8s-cli/$$k; done
	chmod 600 certs/k8s-cli/tls.key

lint: $(STAMP)  ## ruff check + ruff format --check
	$(VENV)/bin/ruff check services tests tools
	$(VENV)/bin/ruff format --check services tests tools

typecheck: $(STAMP)  ## mypy --strict on the whole package
	$(VENV)/bin/mypy --strict -p mtlsdemo

protos: $(STAMP)  ## regenerate services/mtlsdemo/_generated from protos/
	$(PY) tools/gen_protos.py

prometheusrule: $(STAMP)  ## regenerate the operator's PrometheusRule from deploy/prometheus/rules
	$(PY) tools/gen_prometheusrule.py

reference: $(STAMP)  ## regenerate docs/reference/cli.md from the parser (a test fails when stale)
	$(PY) tools/gen_cli_reference.py

bench: $(STAMP)  ## speed as ratios against references measured in the same run
	$(VENV)/bin/mtlsdemo bench $(ARGS)

# RUNS runs of each build, alternating (drift hits both alike); figures are medians
RUNS ?= 3
perf-doc: $(STAMP)  ## the whole bench RUNS=3 times per build, interpreted and compiled alternating; docs/performance.md from the medians
	mkdir -p build && rm -f build/bench-interpreted-*.json build/bench-compiled-*.json
	$(PY) tools/build_compiled.py
	for i in $$(seq $(RUNS)); do \
	  $(VENV)/bin/mtlsdemo bench --json > build/bench-interpreted-$$i.json || exit 1; \
	  PYTHONPATH=build/compiled $(VENV)/bin/mtlsdemo bench --json > build/bench-compiled-$$i.json || exit 1; \
	done
	$(PY) tools/perf_doc.py --merge docs/bench.json build/bench-interpreted-*.json --compiled build/bench-compiled-*.json
	$(PY) tools/perf_doc.py docs/bench.json

walkthrough: $(STAMP)  ## regenerate docs/tls-walkthrough.md from `mtlsdemo tour` against a real run
	$(PY) tools/gen_walkthrough.py

clean:  ## remove the venv, generated certs and caches
	rm -rf $(VENV) var certs/ca certs/*/ .pytest_cache .ruff_cache .hypothesis .mypy_cache build
