#!/usr/bin/env bash
# Render an overlay with the mtlsdemo image set to IMAGE (name:tag), without
# touching the repository: a throwaway kustomization wraps the overlay and sets
# the image, so what is applied is exactly the image that was built and loaded.
#   deploy/k8s/render.sh kind mtlsdemo:sha-0123abcd > rendered.yaml
set -euo pipefail
overlay=${1:?usage: render.sh OVERLAY IMAGE (overlay: kind or minikube)}
image=${2:?usage: render.sh OVERLAY IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$here/overlays/$overlay" ] || { echo "error: no overlay '$overlay' in $here/overlays" >&2; exit 2; }
case $image in
    *:*) name=${image%:*}; tag=${image##*:} ;;
    *) echo "error: image '$image' needs a tag (name:tag)" >&2; exit 2 ;;
esac
# kustomize accepts only relative paths to other kustomizations: the wrapper
# lives beside the overlays for the moment it takes to render (git-ignored)
tmp=$(mktemp -d "$here/.render.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/$overlay
images:
  - {name: mtlsdemo, newName: $name, newTag: "$tag"}
YAML
${KUBECTL:-kubectl} kustomize "$tmp"
