#!/bin/sh
# Run inside a gateway pod's sidecar container (verify-on-cluster.sh and the pods tier
# exec it): a client trusting the mesh's CA but holding a leaf from another CA dials the
# ledger's sidecar, which must refuse it with unknown_ca. Exits non-zero when refused.
# The mesh's CA: the identity files' ca.crt, or with MTLSDEMO_IDENTITIES=workload-api
# the pod's agent's bundle (SPIFFE JWK set, each CA in x5c). The client checks no
# stapled status of the ledger (SVIDs carry none): what is tested is the ledger's word.
# env -i: the container's MTLSDEMO_* variables are the sidecar's flags (env twins),
# and `mtlsdemo handshake` would take them as its own.
# shellcheck disable=SC2016  # expanded by the inner shell
env -i PATH="$PATH" HOME=/tmp sh -c '
    mtlsdemo certs bootstrap --out /tmp/evil --service gateway >/dev/null || exit 3
    if [ -f /identity/ca.crt ]; then
        cp /identity/ca.crt /tmp/evil/gateway/ca.crt || exit 3
    else
        python3 -c "
import base64, json, textwrap, urllib.request
keys = json.load(urllib.request.urlopen(\"http://127.0.0.1:9910/bundle\", timeout=5))[\"keys\"]
for k in keys:
    b = k[\"x5c\"][0]
    print(\"-----BEGIN CERTIFICATE-----\\n\" + \"\\n\".join(textwrap.wrap(b, 64)) + \"\\n-----END CERTIFICATE-----\")
" >/tmp/evil/gateway/ca.crt || exit 3
    fi
    mtlsdemo handshake --connect ledger:8443 --client-dir /tmp/evil/gateway --require-status off
    s=$?; rm -rf /tmp/evil; exit $s'
