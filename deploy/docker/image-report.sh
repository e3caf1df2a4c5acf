#!/usr/bin/env bash
# What is inside an mtlsdemo image, measured: its size, the five largest installed
# packages, and its SBOM copied beside it (build/sbom.cdx.json). The README's figures
# come from this output (tests/containers checks them against a fresh build).
set -euo pipefail
image=${1:?usage: image-report.sh IMAGE}
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "$image: $((size / 1000000)) MB"
echo "largest installed packages (MB):"
docker run --rm --entrypoint /opt/mtlsdemo/bin/python "$image" -c '
import importlib.metadata as md, os
sizes = {}
for d in md.distributions():
    total = 0
    for f in d.files or ():
        p = d.locate_file(f)
        if os.path.isfile(p):
            total += os.path.getsize(p)
    sizes[d.metadata["Name"]] = total
for name, n in sorted(sizes.items(), key=lambda kv: -kv[1])[:5]:
    print(f"  {n / 1e6:6.1f}  {name}")
'
mkdir -p build
docker run --rm --entrypoint cat "$image" /opt/mtlsdemo/share/mtlsdemo/sbom.cdx.json > build/sbom.cdx.json
echo "SBOM (CycloneDX): /opt/mtlsdemo/share/mtlsdemo/sbom.cdx.json in the image, build/sbom.cdx.json here"
