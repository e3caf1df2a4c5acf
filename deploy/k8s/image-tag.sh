#!/usr/bin/env bash
# The content-addressed tag a cluster gets for IMAGE: mtlsdemo:sha-<first 12 hex of
# the image ID>. A rebuilt image gets a new tag (the pods roll), an unchanged one
# keeps it. Tags IMAGE with it and prints it (up.sh and the pods tier use it).
#   deploy/k8s/image-tag.sh mtlsdemo:dev   ->  mtlsdemo:sha-0123456789ab
set -euo pipefail
image=${1:?usage: image-tag.sh IMAGE}
id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) ||
    { echo "error: image $image not found: run \`make image\` first" >&2; exit 2; }
tag="mtlsdemo:sha-${id#sha256:}"
tag=${tag:0:25}
docker tag "$image" "$tag"
echo "$tag"
