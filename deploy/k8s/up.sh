#!/usr/bin/env bash
# Bring mtlsdemo up on a local cluster and prove it serves:
#   deploy/k8s/up.sh kind        (make kind-up)
#   deploy/k8s/up.sh minikube    (make minikube-up)
# 1. the cluster, pinned: kind's node image by tag+digest (overlays/kind/kind-cluster.yaml),
#    minikube's --kubernetes-version below; created only if missing
# 2. every kubectl call names the context (kind-mtlsdemo / mtlsdemo): never whatever is current
# 3. the image just built, under a tag derived from its content (so a rebuilt image rolls
#    the pods, an unchanged one does not), loaded with `kind load docker-image`, or with
#    `docker save` + `kind load image-archive` where Docker's containerd image store
#    breaks the former (kind#3795)
# 4. the rendered overlay with exactly that image; the completed bootstrap Job is deleted
#    first (a Job's pod template is immutable; re-running the bootstrap is idempotent)
# 5. waits for the Job and the rollouts, then runs the smoke Job (smoke/smoke-job.yaml):
#    real calls through gateway -> sidecars -> ledger; exit 1 with its logs if it fails.
set -euo pipefail
cluster=${1:?usage: up.sh kind|minikube}
here=$(cd "$(dirname "$0")" && pwd)
IMAGE=${MTLSDEMO_IMAGE:-mtlsdemo:dev}
KUBECTL=${KUBECTL:-kubectl}
NS=mtlsdemo
KIND_VERSION=v0.33.0           # the release whose node image kind-cluster.yaml pins
MINIKUBE_K8S_VERSION=v1.35.8   # same Kubernetes as the kind node image

say() { printf '== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed for $cluster: $2)"; }

need docker "to hold the image"
need "$KUBECTL" "to deploy"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found: run \`make image\` first"
id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
tag="mtlsdemo:sha-${id#sha256:}"; tag=${tag:0:25}
docker tag "$IMAGE" "$tag"

case $cluster in
kind)
    need kind "https://kind.sigs.k8s.io"
    ctx=kind-mtlsdemo
    have=$(kind version | awk '{print $2}')
    [ "$have" = "$KIND_VERSION" ] || echo "warning: kind $have; the pinned node image is built for kind $KIND_VERSION" >&2
    if ! kind get clusters 2>/dev/null | grep -qx mtlsdemo; then
        say "creating kind cluster mtlsdemo"
        kind create cluster --config "$here/overlays/kind/kind-cluster.yaml"
    fi
    say "loading $tag into kind"
    if ! kind load docker-image "$tag" --name mtlsdemo; then
        archive=$(mktemp --suffix=.tar); trap 'rm -f "$archive"' EXIT
        docker save "$tag" -o "$archive"
        kind load image-archive "$archive" --name mtlsdemo
    fi
    ;;
minikube)
    need minikube "https://minikube.sigs.k8s.io"
    ctx=mtlsdemo
    if ! minikube -p mtlsdemo status >/dev/null 2>&1; then
        say "starting minikube profile mtlsdemo (Kubernetes $MINIKUBE_K8S_VERSION, Calico)"
        minikube start -p mtlsdemo --kubernetes-version="$MINIKUBE_K8S_VERSION" --cni=calico
    fi
    say "loading $tag into minikube"
    minikube -p mtlsdemo image load "$tag"
    ;;
*) die "unknown cluster '$cluster' (kind or minikube)" ;;
esac
k() { "$KUBECTL" --context "$ctx" "$@"; }
k get --raw /version >/dev/null || die "context $ctx does not answer"

say "deploying overlays/$cluster with $tag (context $ctx)"
rendered=$(mktemp); trap 'rm -f "$rendered" "${archive:-}"' EXIT
"$here/render.sh" "$cluster" "$tag" >"$rendered"
k -n "$NS" delete job cert-bootstrap --ignore-not-found >/dev/null 2>&1 || true
k apply -f "$rendered"

say "waiting for the bootstrap and the rollouts"
k -n "$NS" wait --for=condition=complete job/cert-bootstrap --timeout=180s
k -n "$NS" rollout status statefulset/ledger --timeout=300s
k -n "$NS" rollout status deployment/gateway --timeout=300s
k -n "$NS" rollout status deployment/prometheus --timeout=300s

say "smoke test: open, deposit, transfer, balance through gateway -> sidecars -> ledger"
k -n "$NS" delete job mtlsdemo-smoke --ignore-not-found >/dev/null
sed "s|image: mtlsdemo$|image: $tag|" "$here/smoke/smoke-job.yaml" | k -n "$NS" apply -f - >/dev/null
if ! k -n "$NS" wait --for=condition=complete job/mtlsdemo-smoke --timeout=180s; then
    echo "!! the smoke Job failed: the mesh does not serve. Its steps' logs:" >&2
    k -n "$NS" logs job/mtlsdemo-smoke --all-containers --prefix >&2 || true
    k -n "$NS" get pods -o wide >&2 || true
    exit 1
fi
k -n "$NS" logs job/mtlsdemo-smoke --all-containers --prefix | sed 's/^/   /'
say "mtlsdemo serves on $ctx (image $tag)"
cat <<TXT
gateway:    $KUBECTL --context $ctx -n $NS port-forward svc/gateway 50052:50052
cli cert:   make k8s-cli-cert   (writes certs/k8s-cli from the Secret mtlsdemo-cli-tls)
then:       mtlsdemo client --identity-dir certs/k8s-cli open alice
prometheus: $KUBECTL --context $ctx -n $NS port-forward svc/prometheus 9090:9090   -> http://127.0.0.1:9090/alerts
grafana:    $KUBECTL --context $ctx -n $NS port-forward svc/grafana 3000:3000     -> dashboard 'mtls handshakes'
console:    $KUBECTL --context $ctx -n $NS port-forward svc/console 8080:8080     -> http://127.0.0.1:8080/
prove more: deploy/k8s/verify-on-cluster.sh $ctx
TXT
