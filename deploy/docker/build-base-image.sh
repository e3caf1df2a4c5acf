#!/usr/bin/env bash
# Build a Debian bookworm + python3 base image without any image registry:
# debootstrap a minimal root filesystem and `docker import` it. For air-gapped
# machines and CI here (no registry can be reached).
#
#   deploy/docker/build-base-image.sh [IMAGE_NAME]        (default mtlsdemo-base:bookworm)
#
# Environment:
#   DEBIAN_MIRROR    mirror for debootstrap (default: the host's apt mirror, else deb.debian.org)
#   SITE_CA_BUNDLE   a CA bundle to install in the image, for builds behind an intercepting
#                    proxy (default: the host's /etc/ssl/certs/ca-certificates.crt when present)
#   FORCE=1          rebuild even when the image exists
set -euo pipefail

name=${1:-mtlsdemo-base:bookworm}
if [[ -z ${FORCE:-} ]] && docker image inspect "$name" >/dev/null 2>&1; then
    echo "base image $name exists (FORCE=1 rebuilds it)"
    exit 0
fi
for tool in debootstrap docker tar; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install -y debootstrap docker.io)" >&2; exit 2; }
done
if [[ $(id -u) != 0 ]]; then
    echo "error: debootstrap needs root (run with sudo)" >&2
    exit 2
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi
bundle=${SITE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

root=$(mktemp -d /tmp/mtlsdemo-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
echo "== debootstrap bookworm from $mirror into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null

if [[ -f $bundle ]]; then
    echo "== installing CA bundle $bundle (pip inside image builds trusts it)"
    cp "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
fi
# A smaller image: no apt lists, docs, man pages or locales beyond C.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log

echo "== docker import as $name"
tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$name" >/dev/null
echo "== $name built in $(( $(date +%s) - start ))s: $(docker image inspect -f '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}')"
