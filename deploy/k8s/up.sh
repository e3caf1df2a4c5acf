#!/usr/bin/env bash
# Bring mtlsdemo up on a local cluster and prove it serves:
#   deploy/k8s/up.sh kind                      (make kind-up)
#   deploy/k8s/up.sh minikube                  (make minikube-up)
# and run one CA rollover stage on it, with the image it runs (make k8s-rotate-ca):
#   deploy/k8s/up.sh kind rotate-ca plan|prepare|switch|finish
# 1. the cluster, pinned: kind's node image by tag+digest (overlays/kind/kind-cluster.yaml),
#    minikube's --kubernetes-version below; created only if missing. Kubernetes 1.35
#    refuses cgroup v1 hosts by default: kind-cluster.yaml and the minikube flags say
#    failCgroupV1: false, and the script says so when the host is one
# 2. every kubectl call names the context (kind-mtlsdemo / mtlsdemo): never whatever is
#    current; when creating the cluster switched the current context, it says so
# 3. the image just built, under a tag derived from its content (image-tag.sh: a rebuilt
#    image rolls the pods, an unchanged one does not), loaded with `kind load docker-image`,
#    or with `docker image save --platform` + `kind load image-archive` where Docker's
#    containerd image store breaks the former (kind#3795)
# 4. the rendered overlay with exactly that image; the completed bootstrap Job is deleted
#    first (a Job's pod template is immutable; re-running the bootstrap is idempotent)
# 5. waits for the Job (its logs at once if it fails) and every rollout it prints a URL
#    for, then runs the smoke Job (render.sh smoke): real calls through gateway ->
#    sidecars -> ledger; exit 1 with its logs as soon as it fails.
# Each stage prints its duration; on a laptop expect about 3-5 minutes for a first run
# (cluster creation and the Grafana/Prometheus pulls) and under one for a re-run.
set -euo pipefail
usage="usage: up.sh kind|minikube [rotate-ca plan|prepare|switch|finish]"
cluster=${1:?$usage}
action=${2:-up}
here=$(cd "$(dirname "$0")" && pwd)
IMAGE=${MTLSDEMO_IMAGE:-mtlsdemo:dev}
KUBECTL=${KUBECTL:-kubectl}
NS=mtlsdemo
KIND_VERSION=v0.33.0           # the release whose node image kind-cluster.yaml pins
MINIKUBE_K8S_VERSION=v1.35.8   # same Kubernetes as the kind node image
t0=$SECONDS
tstage=$SECONDS

say() { printf '== %s\n' "$*"; }
# a stage: the previous one's duration, then what starts now
stage() { printf '== [+%ss, total %ss] %s\n' "$((SECONDS - tstage))" "$((SECONDS - t0))" "$*"; tstage=$SECONDS; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed for $cluster: $2)"; }

case $cluster in
kind) ctx=kind-mtlsdemo ;;
minikube) ctx=mtlsdemo ;;
*) die "unknown cluster '$cluster' (kind or minikube)" ;;
esac
k() { "$KUBECTL" --context "$ctx" "$@"; }

# wait for a Job to end: 0 once Complete; 1 as soon as it Failed, a pod of it cannot
# start (image, config, mount) or the time is up, with its pods and logs on stderr
wait_job() {
    local job=$1 limit=$2 start=$SECONDS state stuck
    while :; do
        state=$(k -n "$NS" get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)
        case " $state " in
        *" Complete "*) return 0 ;;
        *" Failed "*) echo "!! job/$job failed" >&2; break ;;
        esac
        stuck=$(k -n "$NS" get pods -l "job-name=$job" -o jsonpath='{..waiting.reason}' 2>/dev/null || true)
        case " $stuck " in
        *ImagePullBackOff* | *ErrImagePull* | *CreateContainerConfigError* | *InvalidImageName*)
            echo "!! job/$job cannot start a pod: $stuck" >&2; break ;;
        # restartPolicy OnFailure: a failing run is restarted in its pod with a growing
        # back-off, and the Job says Failed only after backoffLimit (~10 minutes): the
        # kubelet's back-off is the first sign, so say it then
        *CrashLoopBackOff*)
            echo "!! job/$job failed and is being restarted (CrashLoopBackOff)" >&2; break ;;
        esac
        if ((SECONDS - start >= limit)); then echo "!! job/$job not complete after ${limit}s" >&2; break; fi
        sleep 2
    done
    k -n "$NS" get pods -l "job-name=$job" -o wide >&2 || true
    k -n "$NS" logs "job/$job" --all-containers --prefix >&2 || true
    return 1
}

# a Job as render.sh rendered it, replacing the last run (a Job's pod template is
# immutable), waited for
run_job() {  # name timeout manifest
    k -n "$NS" delete job "$1" --ignore-not-found >/dev/null
    k apply -f - >/dev/null <<<"$3"
    wait_job "$1" "$2"
}

if [ "$action" = rotate-ca ]; then
    stage_name=${3:?$usage}
    need "$KUBECTL" "to run the Job"
    # the image the mesh runs, not a name the cluster cannot pull
    image=$(k -n "$NS" get statefulset ledger -o jsonpath='{.spec.template.spec.containers[0].image}') ||
        die "no mtlsdemo on context $ctx: run make $cluster-up first"
    manifest=$("$here/render.sh" rotate-ca "$image" "$stage_name")
    stage "CA rollover stage '$stage_name' on $ctx (image $image)"
    if ! run_job cert-rotate-ca 300 "$manifest"; then
        die "the rotate-ca $stage_name Job failed (its logs above); nothing later was run"
    fi
    k -n "$NS" logs job/cert-rotate-ca | sed 's/^/   /'
    stage "rotate-ca $stage_name done; next: docs/operations.md, 'Rotate the CA'"
    exit 0
fi
[ "$action" = up ] || die "$usage"

need docker "to hold the image"
need "$KUBECTL" "to deploy"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found: run \`make image\` first"
stage "tagging $IMAGE by its content"
tag=$("$here/image-tag.sh" "$IMAGE")
cgroup=$(docker info --format '{{.CgroupVersion}}' 2>/dev/null || echo unknown)
if [ "$cgroup" = 1 ]; then
    echo "note: this host uses cgroup v1; Kubernetes 1.35 refuses it by default, so the cluster is made with failCgroupV1: false (deprecated: move the host to cgroup v2 when you can)" >&2
fi
before=$("$KUBECTL" config current-context 2>/dev/null || echo none)

# $archive: the image saved with this platform's variant only (a multi-platform archive
# is what kind and minikube fail to import from Docker's containerd store); a portable
# temp file (BSD mktemp has no --suffix), removed on exit. Not in a subshell: the trap
# must belong to the script
image_archive() {
    local arch
    archive=$(mktemp "${TMPDIR:-/tmp}/mtlsdemo-image.XXXXXX")
    trap 'rm -f "$archive"' EXIT
    arch=$(docker version -f '{{.Server.Arch}}' 2>/dev/null || echo amd64)
    docker image save --platform "linux/$arch" "$tag" -o "$archive" 2>/dev/null ||
        docker image save "$tag" -o "$archive"   # an engine older than --platform
}

case $cluster in
kind)
    need kind "https://kind.sigs.k8s.io"
    have=$(kind version | awk '{print $2}')
    [ "$have" = "$KIND_VERSION" ] || echo "warning: kind $have; the pinned node image is built for kind $KIND_VERSION" >&2
    if ! kind get clusters 2>/dev/null | grep -qx mtlsdemo; then
        stage "creating kind cluster mtlsdemo"
        kind create cluster --config "$here/overlays/kind/kind-cluster.yaml"
    else
        # a cluster from an earlier run is reused: only if it runs the pinned version
        # (the manifests are checked against it; an older one may lack native sidecars)
        want=$(sed -n 's/.*image: kindest\/node:\(v[0-9.]*\)@.*/\1/p' "$here/overlays/kind/kind-cluster.yaml")
        running=$(k get nodes -o jsonpath='{.items[0].status.nodeInfo.kubeletVersion}' 2>/dev/null || true)
        if [ -n "$running" ] && [ "$running" != "$want" ]; then
            die "the existing kind cluster mtlsdemo runs Kubernetes $running, not the pinned $want: make kind-down, then make kind-up creates it as pinned"
        fi
    fi
    stage "loading $tag into kind"
    if ! kind load docker-image "$tag" --name mtlsdemo; then
        image_archive
        kind load image-archive "$archive" --name mtlsdemo
    fi
    ;;
minikube)
    need minikube "https://minikube.sigs.k8s.io"
    if ! minikube -p mtlsdemo status >/dev/null 2>&1; then
        stage "starting minikube profile mtlsdemo (Kubernetes $MINIKUBE_K8S_VERSION, Calico)"
        minikube start -p mtlsdemo --kubernetes-version="$MINIKUBE_K8S_VERSION" --cni=calico \
            --extra-config=kubelet.fail-cgroupv1=false
    fi
    stage "loading $tag into minikube"
    # Docker's containerd image store makes `image load` of a name fail as it does for
    # kind: the platform's archive is the fallback, and the image must then be listed
    if ! minikube -p mtlsdemo image load "$tag"; then
        image_archive
        minikube -p mtlsdemo image load "$archive"
    fi
    minikube -p mtlsdemo image ls 2>/dev/null | grep -q "${tag#*/}" ||
        die "$tag is not in minikube's images after loading it (minikube -p mtlsdemo image ls)"
    ;;
esac
after=$("$KUBECTL" config current-context 2>/dev/null || echo none)
if [ "$after" != "$before" ]; then
    echo "note: creating the cluster made $after kubectl's current context (it was $before; back: $KUBECTL config use-context $before)" >&2
fi
k get --raw /version >/dev/null || die "context $ctx does not answer"

stage "deploying overlays/$cluster with $tag (context $ctx, identities: ${MTLSDEMO_IDENTITIES:-files})"
rendered=$(mktemp "${TMPDIR:-/tmp}/mtlsdemo-rendered.XXXXXX")
trap 'rm -f "$rendered" "${archive:-}"' EXIT
"$here/render.sh" "$cluster" "$tag" >"$rendered"
k -n "$NS" delete job cert-bootstrap --ignore-not-found >/dev/null 2>&1 || true
k apply -f "$rendered"

stage "waiting for the bootstrap Job"
wait_job cert-bootstrap 180 || die "the cert-bootstrap Job did not complete (its logs above): no identity was issued"
stage "waiting for the rollouts"
for w in statefulset/ledger deployment/gateway; do
    if ! k -n "$NS" rollout status "$w" --timeout=300s; then
        # what a timeout alone does not say: which pod waits, and on what
        k -n "$NS" get pods -o wide >&2 || true
        k -n "$NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2 || true
        die "$w did not roll out (its pods and the last events above)"
    fi
done
ready=()
for d in console prometheus grafana; do   # what the closing lines point at
    if k -n "$NS" rollout status "deployment/$d" --timeout=300s >/dev/null; then
        ready+=("$d")
    else
        echo "warning: deployment/$d is not ready (its image pulls from a public registry?): $KUBECTL --context $ctx -n $NS describe deployment/$d" >&2
    fi
done

stage "smoke test: open, deposit, transfer, balance through gateway -> sidecars -> ledger"
smoke=$("$here/render.sh" smoke "$tag")
if ! run_job mtlsdemo-smoke 180 "$smoke"; then
    echo "!! the smoke Job failed: the mesh does not serve. Its steps' logs are above." >&2
    exit 1
fi
k -n "$NS" logs job/mtlsdemo-smoke --all-containers --prefix | sed 's/^/   /'
# kind's kindnet programs NetworkPolicy with nftables; where the kernel lacks what it
# needs (WSL2) it logs this and enforces nothing, failing open (kind #3705, #3789)
if [ "$cluster" = kind ] &&
    k -n kube-system logs -l app=kindnet --tail=500 2>/dev/null | grep -q "error syncing nftables rules"; then
    echo "!! WARNING: NetworkPolicies are NOT enforced on this cluster: kindnet cannot program" >&2
    echo "!! nftables here (kindnet's log: 'error syncing nftables rules'; WSL2 does this)." >&2
    echo "!! Everything else works; to see the policies enforced, use make minikube-up." >&2
fi
stage "mtlsdemo serves on $ctx (image $tag)"
url() { case " ${ready[*]} " in *" $1 "*) echo "$2" ;; *) echo "$2   (not ready yet)" ;; esac; }
cat <<TXT
gateway:    $KUBECTL --context $ctx -n $NS port-forward svc/gateway 50052:50052
cli cert:   make k8s-cli-cert   (writes certs/k8s-cli from the Secret mtlsdemo-cli-tls)
then:       mtlsdemo client --identity-dir certs/k8s-cli open alice
$(url prometheus "prometheus: $KUBECTL --context $ctx -n $NS port-forward svc/prometheus 9090:9090   -> http://127.0.0.1:9090/alerts")
$(url grafana "grafana:    $KUBECTL --context $ctx -n $NS port-forward svc/grafana 3000:3000     -> dashboard 'mtls handshakes'")
$(url console "console:    $KUBECTL --context $ctx -n $NS port-forward svc/console 8080:8080     -> http://127.0.0.1:8080/")
rotate CA:  deploy/k8s/up.sh $cluster rotate-ca plan   (then prepare, switch, finish: docs/operations.md)
prove more: deploy/k8s/verify-on-cluster.sh $ctx
TXT
