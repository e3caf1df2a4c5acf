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
        base-image image compose-up compose-down kind-up kind-down minikube-up minikube-down \
        k8s-wait k8s-cli-cert test-deploy test-repeat

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

# flake hunt: N back-to-back runs of the unit and integration tiers, failures per test
N ?= 20
TIERS ?= tests/unit tests/integration
test-repeat: $(STAMP)
	$(PY) tools/test_repeat.py --runs $(N) $(TIERS)

test-deploy: $(STAMP)
	$(PY) -m pytest tests/deploy $(ARGS)

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

# Kubernetes (needs kind or minikube, and kubectl; verified offline here, see README)
KUBECTL ?= kubectl
NS      := mtlsdemo

kind-up: image  ## create a kind cluster, load the image, deploy, wait, print how to reach it
	kind get clusters | grep -qx mtlsdemo || kind create cluster --config deploy/k8s/overlays/kind/kind-cluster.yaml
	kind load docker-image $(MTLSDEMO_IMAGE) --name mtlsdemo
	$(KUBECTL) apply -k deploy/k8s/overlays/kind
	$(MAKE) --no-print-directory k8s-wait

kind-down:
	kind delete cluster --name mtlsdemo

minikube-up: image  ## start minikube (Calico enforces NetworkPolicy), load the image, deploy, wait
	minikube status >/dev/null 2>&1 || minikube start --cni=calico
	minikube image load $(MTLSDEMO_IMAGE)
	$(KUBECTL) apply -k deploy/k8s/overlays/minikube
	$(MAKE) --no-print-directory k8s-wait

minikube-down:
	minikube delete

k8s-wait:
	$(KUBECTL) -n $(NS) wait --for=condition=complete job/cert-bootstrap --timeout=180s
	$(KUBECTL) -n $(NS) rollout status statefulset/ledger --timeout=300s
	$(KUBECTL) -n $(NS) rollout status deployment/gateway --timeout=300s
	$(KUBECTL) -n $(NS) rollout status deployment/prometheus --timeout=300s
	@echo "gateway:    $(KUBECTL) -n $(NS) port-forward svc/gateway 50052:50052"
	@echo "cli cert:   make k8s-cli-cert   (writes certs/k8s-cli from the Secret mtlsdemo-cli-tls)"
	@echo "then:       mtlsdemo client --tls-dir certs/k8s-cli open alice"
	@echo "prometheus: $(KUBECTL) -n $(NS) port-forward svc/prometheus 9090:9090   -> http://127.0.0.1:9090/alerts"
	@echo "grafana:    $(KUBECTL) -n $(NS) port-forward svc/grafana 3000:3000     -> dashboard 'mtls handshakes'"

k8s-cli-cert:
	mkdir -p certs/k8s-cli
	for k in tls.crt tls.key ca.crt; do \
	  $(KUBECTL) -n $(NS) get secret mtlsdemo-cli-tls -o go-template="{{index .data \"$$k\" | base64decode}}" > certs/k8s-cli/$$k; done
	chmod 600 certs/k8s-cli/tls.key

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests tools

protos: $(STAMP)  ## regenerate services/mtlsdemo/_generated from protos/
	$(PY) tools/gen_protos.py

bench: $(STAMP)  ## speed as ratios against references measured in the same run
	$(VENV)/bin/mtlsdemo bench $(ARGS)

clean:
	rm -rf $(VENV) var certs/ca certs/*/ .pytest_cache .ruff_cache .hypothesis
