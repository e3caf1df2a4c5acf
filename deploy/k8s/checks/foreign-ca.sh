#!/bin/sh
# Run inside the gateway container (verify-on-cluster.sh and the pods tier exec it):
# a client with our CA's ca.crt but a leaf from another CA dials the ledger's
# sidecar, which must refuse it with unknown_ca. Exits non-zero when refused.
# env -i: the container's MTLSDEMO_* variables are the gateway's flags (env twins),
# and `mtlsdemo handshake` would take them as its own.
# shellcheck disable=SC2016  # expanded by the inner shell
env -i PATH="$PATH" HOME=/tmp sh -c '
    mtlsdemo certs bootstrap --out /tmp/evil --service gateway >/dev/null &&
    cp /identity/ca.crt /tmp/evil/gateway/ca.crt &&
    mtlsdemo handshake --connect ledger:8443 --client-dir /tmp/evil/gateway
    s=$?; rm -rf /tmp/evil; exit $s'
