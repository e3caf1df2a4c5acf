"""Two examples for every subcommand's --help (issue 27: help had no description
and no example). One table, so a test can parse every example with the real parser."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "certs": (
        "mtlsdemo certs bootstrap --out certs",
        "mtlsdemo certs inspect certs/gateway/tls.crt --ca certs/ca/ca.crt",
    ),
    "certs bootstrap": (
        "mtlsdemo certs bootstrap --out certs",
        "mtlsdemo certs bootstrap --out certs --service gateway --force",
    ),
    "certs revoke": (
        "mtlsdemo certs revoke gateway --out certs",
        "mtlsdemo certs revoke --serial 5f3a --out certs --reason key_compromise",
    ),
    "certs refresh-status": (
        "mtlsdemo certs refresh-status --out certs",
        "mtlsdemo certs refresh-status --out certs --every 15m",
    ),
    "certs rotate-ca": (
        "mtlsdemo certs rotate-ca plan --out certs",
        "mtlsdemo certs rotate-ca prepare --out certs",
    ),
    "certs inspect": (
        "mtlsdemo certs inspect certs/gateway/tls.crt",
        "mtlsdemo certs inspect certs/gateway/tls.crt --ca certs/ca/ca.crt",
    ),
    "certs csr": (
        "mtlsdemo certs csr --service billing --out-dir billing",
        "mtlsdemo certs csr --service billing --key-type rsa-2048 --out-dir billing",
    ),
    "certs sign": (
        "mtlsdemo certs sign billing/tls.csr --ca-dir certs/ca --service billing",
        "mtlsdemo certs sign billing/tls.csr --ca-dir certs/ca --service billing --days 7",
    ),
    "serve": (
        "mtlsdemo serve ledger --plaintext --listen 127.0.0.1:50061",
        "mtlsdemo serve gateway --identity-dir certs/gateway",
    ),
    "serve ledger": (
        "mtlsdemo serve ledger --plaintext --listen 127.0.0.1:50061",
        "mtlsdemo serve ledger --identity-dir certs/ledger --db var/ledger.db",
    ),
    "serve gateway": (
        "mtlsdemo serve gateway --identity-dir certs/gateway",
        "mtlsdemo serve gateway --identity-dir certs/gateway --crl certs/ca/crl.pem",
    ),
    "run": ("mtlsdemo run", "mtlsdemo run --traffic-seconds 10 --console-port 0"),
    "client": (
        "mtlsdemo client --identity-dir certs/cli open alice --id alice",
        "mtlsdemo client --identity-dir certs/cli balance alice",
    ),
    "client open": (
        "mtlsdemo client --identity-dir certs/cli open alice --id alice",
        "mtlsdemo client --identity-dir certs/cli open bob",
    ),
    "client deposit": (
        "mtlsdemo client --identity-dir certs/cli deposit alice 100.00",
        "mtlsdemo client --identity-dir certs/cli deposit alice 0.50",
    ),
    "client transfer": (
        "mtlsdemo client --identity-dir certs/cli transfer alice bob 12.50",
        "mtlsdemo client --identity-dir certs/cli transfer bob alice 1",
    ),
    "client balance": (
        "mtlsdemo client --identity-dir certs/cli balance alice",
        "mtlsdemo client --gateway-addr 127.0.0.1:50052 --identity-dir certs/cli balance bob",
    ),
    "client statement": (
        "mtlsdemo client --identity-dir certs/cli statement alice",
        "mtlsdemo client --identity-dir certs/cli statement alice --follow",
    ),
    "loadgen": (
        "mtlsdemo loadgen --identity-dir certs/cli --rps 50 --duration 10",
        "mtlsdemo loadgen --identity-dir certs/cli --rps 200 --duration 30",
    ),
    "agent": (
        "mtlsdemo agent --certs-dir certs --socket-dir /tmp/mtlsdemo-agent",
        "mtlsdemo agent --svid-ttl 2m --workload gateway --workload ledger",
    ),
    "sidecar": (
        "mtlsdemo sidecar --identity-dir certs/ledger --inbound-listen 127.0.0.1:50051 "
        "--inbound-target 127.0.0.1:50061 --allow-id spiffe://mtls-demo.local/ns/default/sa/gateway",
        "mtlsdemo sidecar --identity-dir certs/gateway --route "
        "127.0.0.1:15001=127.0.0.1:50051@spiffe://mtls-demo.local/ns/default/sa/ledger "
        "--crl certs/ca/crl.pem",
    ),
    "handshake": (
        "mtlsdemo handshake --trace",
        "mtlsdemo handshake --trace --connect 127.0.0.1:50051 --certs-dir certs",
    ),
    "break": ("mtlsdemo break --list", "mtlsdemo break foreign-ca"),
    "tour": ("mtlsdemo tour", "mtlsdemo tour --non-interactive --markdown"),
    "capture": (
        "mtlsdemo capture --seconds 5 --out mesh.pcapng",
        "mtlsdemo capture --seconds 10 --out /tmp/mesh.pcapng --gateway-admin 127.0.0.1:9901",
    ),
    "illustrate": (
        "mtlsdemo illustrate --seed 1 --out illustrated",
        "mtlsdemo illustrate --seed 7 --suite ECDHE-X25519-CHACHA20-POLY1305 --out /tmp/page",
    ),
    "authz": (
        "mtlsdemo authz explain --from gateway --to ledger/Transfer --authz-policy policy.yaml",
        "mtlsdemo authz diff mesh policy.yaml",
    ),
    "authz explain": (
        "mtlsdemo authz explain --from gateway --to ledger",
        "mtlsdemo authz explain --from spiffe://mtls-demo.local/ns/default/sa/cli "
        "--to gateway/Deposit --authz-policy policy.yaml",
    ),
    "authz matrix": (
        "mtlsdemo authz matrix",
        "mtlsdemo authz matrix --authz-policy policy.yaml --certs-dir certs",
    ),
    "authz diff": (
        "mtlsdemo authz diff mesh policy.yaml",
        "mtlsdemo authz diff old.yaml new.yaml",
    ),
    "wireshark": ("mtlsdemo wireshark --print-path", "mtlsdemo wireshark --install"),
    "console": (
        "mtlsdemo console",
        "mtlsdemo console --sidecar-admin 127.0.0.1:9902 --listen 127.0.0.1:8081",
    ),
    "chaos": ("mtlsdemo chaos --duration 40 --seed 7", "mtlsdemo chaos --duration 120 --seed 1"),
    "bench": ("mtlsdemo bench handshake", "mtlsdemo bench all --json"),
    "probe": (
        "mtlsdemo probe --probe-http http://127.0.0.1:9902/readyz",
        "mtlsdemo probe --probe-grpc 127.0.0.1:50052 --probe-identity-dir certs/cli "
        "--probe-server-name gateway",
    ),
}
