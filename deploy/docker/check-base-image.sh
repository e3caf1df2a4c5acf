#!/bin/sh
# `make image`'s first step: the base image it names is here or can be pulled;
# otherwise one line saying how to build one without a registry (rather than
# Docker's own "pull access denied" or DNS error, several lines into the build).
img="$1"
if ! docker info >/dev/null 2>&1; then
    echo "error: Docker is not reachable (docker info failed): start dockerd, or run as a user in the docker group" >&2
    exit 2
fi
docker image inspect "$img" >/dev/null 2>&1 && exit 0
docker pull -q "$img" >/dev/null 2>&1 && exit 0
echo "error: base image $img is not here and cannot be pulled (no registry reachable?); build one from Debian packages with \`make base-image\`, then pass MTLSDEMO_BASE_IMAGE=mtlsdemo-base:bookworm (e.g. \`make compose-up MTLSDEMO_BASE_IMAGE=mtlsdemo-base:bookworm\`)" >&2
exit 2
