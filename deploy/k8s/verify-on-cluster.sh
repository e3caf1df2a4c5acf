#!/usr/bin/env bash
# What only a real cluster can prove, as a pass/fail table. Run it after
# `make kind-up` (or minikube-up) on a machine with the cluster:
#   deploy/k8s/verify-on-cluster.sh [CONTEXT]      (default kind-mtlsdemo)
# Each check says what it proves; the script exits 1 if any check fails.
# It changes the cluster only by: re-running the smoke Job, one short-lived
# probe pod, and one forced renewal of the ledger's certificate.
set -uo pipefail
ctx=${1:-kind-mtlsdemo}
NS=mtlsdemo
here=$(cd "$(dirname "$0")" && pwd)
KUBECTL=${KUBECTL:-kubectl}
k() { "$KUBECTL" --context "$ctx" -n "$NS" "$@"; }
command -v python3 >/dev/null || { echo "error: python3 is needed to read the API's JSON" >&2; exit 2; }
k get ns "$NS" >/dev/null 2>&1 || { echo "error: no namespace $NS on context $ctx: run make kind-up first" >&2; exit 2; }

results=()
record() {  # name, pass|FAIL, detail
    results+=("$(printf '%-44s %-5s %s' "$1" "$2" "$3")")
    printf '%-44s %-5s %s\n' "$1" "$2" "$3" >&2
}
check() {  # name, detail-on-pass, command...
    local name=$1 detail=$2; shift 2
    local out
    if out=$("$@" 2>&1); then record "$name" pass "$detail"; else record "$name" FAIL "$(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# a Job's end: 0 once Complete; 1 as soon as it Failed (with its last log lines) or the
# time is up (`kubectl wait --for=condition=complete` would sit out the whole timeout
# for a Job that failed in seconds)
job_done() {  # name seconds
    local job=$1 limit=$2 start=$SECONDS state
    while :; do
        state=$(k get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)
        case " $state " in
        *" Complete "*) return 0 ;;
        *" Failed "*) echo "job/$job failed: $(k logs "job/$job" --all-containers --tail=3 2>&1)"; return 1 ;;
        esac
        if ((SECONDS - start >= limit)); then echo "job/$job not complete after ${limit}s"; return 1; fi
        sleep 2
    done
}
sidecar_metrics() {  # pod container port: the admin endpoint, from inside the pod (no NetworkPolicy on loopback)
    k exec "$1" -c "$2" -- python3 -c "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:$3/$4').read().decode())"
}
image=$(k get statefulset ledger -o jsonpath='{.spec.template.spec.containers[0].image}')

# 1. the bootstrap ran and every pod (native sidecars included) is ready
check "bootstrap Job complete" "Secrets written" \
    job_done cert-bootstrap 60
check "ledger and gateway pods ready" "app + native sidecar ready" \
    k wait --for=condition=Ready pod -l 'app.kubernetes.io/name in (ledger,gateway)' --timeout=120s

# 2. the ledger Service has an endpoint on the sidecar port (the named-port trap)
slice_has_port() {
    k get endpointslices -l kubernetes.io/service-name=ledger -o json | json '
s = d["items"]
port = any(p.get("port") == 8443 for i in s for p in (i.get("ports") or []))
ready = any(e.get("conditions", {}).get("ready") for i in s for e in (i.get("endpoints") or []))
sys.exit(0 if port and ready else 1)'
}
check "ledger EndpointSlice has port 8443" "kube-proxy can route ledger:8443" slice_has_port

# 3. real calls through gateway -> sidecar -> MTD/1 -> sidecar -> ledger
smoke() {
    k delete job mtlsdemo-smoke --ignore-not-found >/dev/null &&
    "$here/render.sh" smoke "$image" | k apply -f - >/dev/null &&
    job_done mtlsdemo-smoke 180
}
check "smoke calls through the sidecars" "open, deposit, transfer, balance" smoke
counted() { sidecar_metrics ledger-0 sidecar 9902 metrics | grep -q '^mtls_handshakes_total{.*result="success".*} [1-9]'; }
check "ledger sidecar counted the gateway's handshakes" "mtls_handshakes_total{result=success}" counted

# 4. a certificate from another CA is refused by the ledger's sidecar, and it says so
foreign() {
    # our CA's ca.crt, another CA's leaf: the ledger's sidecar is the one that refuses
    local out
    if out=$(k exec deploy/gateway -c sidecar -- sh -c "$(cat "$here/checks/foreign-ca.sh")" 2>&1); then return 1; fi
    grep -q unknown_ca <<<"$out"
}
check "foreign-CA client refused (unknown_ca)" "the ledger sidecar rejects, the client is told" foreign

# 5. NetworkPolicy: a pod that is not the gateway cannot reach the ledger's sidecar at all,
#    while the gateway pod can (so the block is the policy, not a broken Service)
# The probe pod proves itself healthy first (it started, ran Python, resolved the
# Service), then connects: only a connect *timeout* means the policy dropped it.
# A pod that fails for any other reason (admission, image, DNS, a refusal) fails
# the check instead of passing it.
probe_pod() {
    # shellcheck disable=SC2016  # run by the pod's Python, not here
    local code='
import socket, sys
print("probe healthy", flush=True)
addr = socket.getaddrinfo("ledger", 8443, proto=socket.IPPROTO_TCP)[0][4]
print("resolved", addr[0], flush=True)
try:
    socket.create_connection(addr, timeout=5)
    print("connected")
except socket.timeout:
    print("blocked: connect timed out")
except OSError as e:
    print("other:", e)'
    k delete pod np-probe --ignore-not-found --wait=true >/dev/null 2>&1
    # Not `run -i --rm`: an attach comes only once the pod is Running and Ready (about
    # a second in), and a CRI attach does not replay what the probe printed before
    # (its first lines, ~100 ms in): the check would see "blocked" alone and fail on a
    # cluster that enforces the policy. Run it, wait for it to finish, read its log.
    k run np-probe --restart=Never --quiet --image="$image" --labels=app.kubernetes.io/name=np-probe \
        --overrides='{"spec":{"securityContext":{"runAsNonRoot":true,"runAsUser":10001,"seccompProfile":{"type":"RuntimeDefault"}},
          "containers":[{"name":"np-probe","image":"'"$image"'","command":["python3","-c",'"$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$code")"'],
          "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}' >/dev/null 2>&1 ||
        { echo "the probe pod was not created"; return 1; }
    if ! k wait --for=jsonpath='{.status.phase}'=Succeeded pod/np-probe --timeout=90s >/dev/null 2>&1; then
        echo "the probe pod did not finish: $(k get pod np-probe -o jsonpath='{.status.phase} {.status.containerStatuses[0].state}' 2>&1)"
    fi
    k logs np-probe 2>&1
    k delete pod np-probe --ignore-not-found --wait=false >/dev/null 2>&1
}
blocked() {
    local out
    out=$(probe_pod) || true
    echo "$out"
    grep -q '^probe healthy' <<<"$out" && grep -q '^resolved ' <<<"$out" && grep -q '^blocked: connect timed out' <<<"$out"
}
allowed() { k exec deploy/gateway -c gateway -- python3 -c "import socket; socket.create_connection(('ledger',8443),timeout=5)"; }
check "gateway pod reaches ledger:8443" "the policy admits the gateway" allowed
check "other pods cannot reach ledger:8443" "NetworkPolicy enforced by the CNI" blocked

# 6. the bundled Prometheus scrapes every app and sidecar
targets() {
    k exec deploy/prometheus -- wget -qO- http://127.0.0.1:9090/api/v1/targets |
        json 'a=d["data"]["activeTargets"]; up=[t for t in a if t["health"]=="up"]; print(len(up), "of", len(a), "up"); sys.exit(0 if a and len(up)==len(a) and len(a)>=4 else 1)'
}
if out=$(targets 2>&1); then record "Prometheus targets up" pass "$out"; else record "Prometheus targets up" FAIL "$out"; fi

# 7. a renewal by the CronJob's template reaches the running sidecar without a restart;
# with MTLSDEMO_IDENTITIES=workload-api the pod's agent renews at half-life instead
source_of() {
    sidecar_metrics ledger-0 sidecar 9902 status |
        json 'print("workload-api" if "workload_api" in d["identity_source"] else "files")'
}
svid() {
    sidecar_metrics ledger-0 sidecar 9902 status | json '
c = d["certificate"]
print("SVID", c["serial"], "expires in", c["expires_in_seconds"], "s, from", d["identity_source"]["workload_api"])'
    sidecar_metrics ledger-0 agent 9910 status |
        json 'w=d["workloads"]["ledger"]; print("agent renews at", w["renew_at"]); sys.exit(0 if w["last_error"] is None else 1)'
}
renewal() {
    local before after restarts_before restarts_after
    before=$(sidecar_metrics ledger-0 sidecar 9902 status | json 'print(d["certificate"]["serial"])') || return 1
    restarts_before=$(k get pod ledger-0 -o jsonpath='{.status.initContainerStatuses[?(@.name=="sidecar")].restartCount}/{.status.containerStatuses[0].restartCount}')
    k delete job renew-now --ignore-not-found >/dev/null
    k get cronjob cert-renew -o json | json '
t=d["spec"]["jobTemplate"]; c=t["spec"]["template"]["spec"]["containers"][0]
c["env"]=[e for e in c["env"] if e["name"]!="MTLSDEMO_SERVICE"]+[{"name":"MTLSDEMO_SERVICE","value":"ledger"},{"name":"MTLSDEMO_FORCE","value":"true"}]
print(json.dumps({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"renew-now"},"spec":t["spec"]}))' |
        k apply -f - >/dev/null || return 1
    job_done renew-now 120 || return 1
    for _ in $(seq 1 60); do   # the kubelet refreshes Secret volumes within about a minute
        after=$(sidecar_metrics ledger-0 sidecar 9902 status | json 'print(d["certificate"]["serial"])')
        [ "$after" != "$before" ] && break
        sleep 3
    done
    restarts_after=$(k get pod ledger-0 -o jsonpath='{.status.initContainerStatuses[?(@.name=="sidecar")].restartCount}/{.status.containerStatuses[0].restartCount}')
    k delete job renew-now --ignore-not-found >/dev/null
    echo "serial $before -> $after, restarts $restarts_before -> $restarts_after"
    [ "$after" != "$before" ] && [ "$restarts_before" = "$restarts_after" ]
}
if [ "$(source_of 2>/dev/null)" = workload-api ]; then
    check "SVID from the pod's agent, renewal due" "$(svid 2>&1 | tr '\n' ' ')" svid
elif out=$(renewal 2>&1); then record "renewal hot-reloaded, no restart" pass "$out"; else record "renewal hot-reloaded, no restart" FAIL "$out"; fi
check "smoke calls after the renewal" "new ledger certificate serves" smoke

# 8. the console found every pod's sidecar through the headless Services (DNS, one
#    record per pod) and reached them through its egress policy; it sees the edge
console_sees_mesh() {
    k wait --for=condition=Available deploy/console --timeout=120s >/dev/null || return 1
    k exec deploy/console -- python3 -c '
import json, sys, time, urllib.request
want = 3  # two gateway replicas and the ledger: one sidecar admin each
for _ in range(40):
    m = json.load(urllib.request.urlopen("http://127.0.0.1:8080/api/mesh"))
    admins = [s for s in m["sources"] if s["kind"] == "sidecar admin" and s["up"]]
    edge = [e for e in m["edges"] if e["path"] == "MTD/1" and e["client"].endswith("/sa/gateway") and e["server"].endswith("/sa/ledger") and e["ok"]]
    if len(admins) >= want and edge:
        print(len(admins), "sidecar admins up; gateway -> ledger", edge[0]["health"])
        sys.exit(0)
    time.sleep(3)
print("sources:", [(s["url"], s["up"], s["error"]) for s in m["sources"]]); sys.exit(1)'
}
if out=$(console_sees_mesh 2>&1); then record "console sees every sidecar and the edge" pass "$out"; else record "console sees every sidecar and the edge" FAIL "$out"; fi

echo
printf '%-44s %-5s %s\n' "check" "" "detail"
printf '%s\n' "${results[@]}"
failed=$(printf '%s\n' "${results[@]}" | grep -c ' FAIL ' || true)
echo "$(( ${#results[@]} - failed )) passed, $failed failed (context $ctx, image $image)"
[ "$failed" -eq 0 ]
