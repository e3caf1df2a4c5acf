#!/usr/bin/env bash
# Render what is applied, with the mtlsdemo image set to IMAGE (name:tag), without
# touching the repository: a throwaway kustomization wraps the target and sets the
# image, so what is applied is exactly the image that was built and loaded.
#   deploy/k8s/render.sh kind mtlsdemo:sha-0123abcd > rendered.yaml   (or minikube)
#   deploy/k8s/render.sh smoke mtlsdemo:sha-0123abcd                  the smoke Job
#   deploy/k8s/render.sh rotate-ca mtlsdemo:sha-0123abcd prepare      one CA rollover stage
# MTLSDEMO_IDENTITIES=workload-api: the workloads take short-lived SVIDs from a
# Workload API agent in each pod (components/workload-api) instead of the files
# the bootstrap writes (MTLSDEMO_IDENTITIES=files, the default).
# MTLSDEMO_KEY_TYPE=ml-dsa-65: the whole mesh on ML-DSA identities, the gateway behind
# its sidecar (components/post-quantum); the Jobs' own renders follow the bootstrap.
set -euo pipefail
usage="usage: render.sh kind|minikube|smoke|rotate-ca IMAGE [STAGE]"
target=${1:?$usage}
image=${2:?$usage}
stage=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
case $target in
    smoke) dir="smoke" ;;
    rotate-ca)
        dir="jobs"
        case $stage in
            plan | prepare | switch | finish) ;;
            *) echo "error: rotate-ca needs a stage: plan, prepare, switch or finish (docs/operations.md)" >&2; exit 2 ;;
        esac ;;
    *)
        [ -d "$here/overlays/$target" ] || { echo "error: no overlay '$target' in $here/overlays (kind, minikube, smoke or rotate-ca)" >&2; exit 2; }
        dir=overlays/$target ;;
esac
key_type=${MTLSDEMO_KEY_TYPE:-ecdsa-p256}
case $key_type in
    ecdsa-p256) ;;
    ml-dsa-65)
        [ "${MTLSDEMO_IDENTITIES:-files}" = files ] || { echo "error: MTLSDEMO_KEY_TYPE=ml-dsa-65 takes the bootstrap's files; drop MTLSDEMO_IDENTITIES=${MTLSDEMO_IDENTITIES}" >&2; exit 2; } ;;
    *) echo "error: MTLSDEMO_KEY_TYPE=$key_type: give ecdsa-p256 (the default) or ml-dsa-65 (the whole mesh post-quantum)" >&2; exit 2 ;;
esac
identities=${MTLSDEMO_IDENTITIES:-files}
case $identities in
    files) components="" ;;
    workload-api)
        case $target in
            kind | minikube) components="components: [../components/workload-api]" ;;
            *) components="" ;;  # the Jobs take their identities from files either way
        esac ;;
    *) echo "error: MTLSDEMO_IDENTITIES=$identities: give files (the default) or workload-api" >&2; exit 2 ;;
esac
if [ "$key_type" = ml-dsa-65 ]; then
    case $target in
        kind | minikube) components="components: [../components/post-quantum]" ;;
    esac
fi
case $image in
    *:*) name=${image%:*}; tag=${image##*:} ;;
    *) echo "error: image '$image' needs a tag (name:tag)" >&2; exit 2 ;;
esac
# kustomize accepts only relative paths to other kustomizations, so the wrapper must
# sit beside the overlays: in a copy of deploy/ in a temporary directory, so that a
# read-only checkout renders too and the checkout is never written
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mtlsdemo-render.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp -R "$here/.." "$tmp/deploy"
tmp=$tmp/deploy/k8s/.render
mkdir "$tmp"
{
    cat <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../$dir
$components
images:
  - {name: mtlsdemo, newName: $name, newTag: "$tag"}
YAML
    if [ -n "$stage" ]; then
        cat <<YAML
patches:
  - target: {kind: Job, name: cert-rotate-ca}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/args/2, value: $stage}
YAML
    fi
} >"$tmp/kustomization.yaml"
${KUBECTL:-kubectl} kustomize "$tmp"
