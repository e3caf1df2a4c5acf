"""The console's picture, from what the watchers saw (pure: no network): edges
merged across the two sidecars' views, health in words, one failure per refusal
with the rejecter's step, native gRPC from /metrics, certificates by CA."""

from __future__ import annotations

import datetime as dt

from mtlsdemo.console.config import admin_url, metrics_url
from mtlsdemo.console.model import mesh_view, short_name
from mtlsdemo.console.sources import MetricsState, SidecarState, parse_metrics

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
GW = "spiffe://mtls-demo.local/ns/default/sa/gateway"
LEDGER = "spiffe://mtls-demo.local/ns/default/sa/ledger"
CLI = "spiffe://mtls-demo.local/ns/default/sa/cli"


def status(name: str, identity: str, edges: list[dict]) -> dict:
    return {
        "name": name,
        "identity": identity,
        "certificate": {
            "serial": "ab",
            "not_after": (NOW + dt.timedelta(days=2)).isoformat(),
            "reload_generation": 3,
            "stapled_status": {"next_update": NOW.isoformat()},
        },
        "edges": edges,
    }


def doc(sidecar: str, role: str, local: str, peer: str, outcome: str, origin: str, **kw) -> dict:
    client, server = (local, peer) if role == "client" else (peer, local)
    rejected_by = "" if outcome == "success" else (local if origin == "local" else peer)
    return {
        "id": kw.pop("id", 1),
        "kind": kw.pop("kind", "handshake"),
        "at": kw.pop("at", (NOW - dt.timedelta(seconds=5)).isoformat()),
        "sidecar": sidecar,
        "role": role,
        "local": local,
        "peer": peer,
        "client": client,
        "server": server,
        "outcome": outcome,
        "origin": origin,
        "rejected_by": rejected_by,
        "detail": kw.pop("detail", ""),
        "step": kw.pop("step", ""),
        **kw,
    }


def sidecars() -> list[SidecarState]:
    gw = SidecarState("http://127.0.0.1:9901", up=True, instance="a")
    gw.status = status(
        "gateway-sidecar",
        GW,
        [
            {
                "role": "client",
                "local": GW,
                "peer": LEDGER,
                "suite": "S1",
                "ok": 10,
                "failed": 1,
                "resumed": 7,
            }
        ],
    )
    ledger = SidecarState("http://127.0.0.1:9902", up=True, instance="b")
    ledger.status = status(
        "ledger-sidecar",
        LEDGER,
        [
            {"role": "server", "local": LEDGER, "peer": GW, "suite": "S1", "ok": 9, "failed": 1,
             "resumed": 6},
            # (an older sidecar's edge: no resumed count)
            {"role": "server", "local": LEDGER, "peer": "unknown", "suite": "none", "ok": 0, "failed": 2},
        ],
    )  # fmt: skip
    # one refusal seen from both ends: the ledger refused (local, step 2), the gateway
    # was told (remote, and itself waiting further on)
    ledger.add_handshake(
        doc("ledger-sidecar", "server", LEDGER, GW, "certificate_revoked", "local",
            step="certificate_verify", detail="serial ab revoked", id=7)
    )  # fmt: skip
    gw.add_handshake(
        doc("gateway-sidecar", "client", GW, LEDGER, "certificate_revoked", "remote_unverified",
            step="finished", detail="the server rejected the connection", id=3)
    )  # fmt: skip
    for i in (8, 9):
        ledger.add_handshake(
            doc("ledger-sidecar", "server", LEDGER, "unknown", "unknown_ca", "local",
                step="certificate_verify", id=i)
        )  # fmt: skip
    return [gw, ledger]


def test_edges_merge_both_views_and_say_their_health_in_words() -> None:
    view = mesh_view(sidecars(), [], NOW)
    edge = next(e for e in view["edges"] if (e["client"], e["server"]) == (GW, LEDGER))
    assert (edge["ok"], edge["failed"], edge["suites"]) == (10, 1, ["S1"])
    assert edge["resumed"] == 7  # of the ok ones, the larger of the two views
    assert {v["sidecar"] for v in edge["seen_by"]} == {"gateway-sidecar", "ledger-sidecar"}
    assert edge["health"] == "failing" and "certificate_revoked" in edge["health_text"]
    assert "rejected by ledger" in edge["health_text"]
    stranger = next(e for e in view["edges"] if e["client"] == "unknown")
    assert stranger["suites"] == [] and stranger["recent_failed"] == 2
    names = {n["id"]: n for n in view["nodes"]}
    assert names["unknown"]["external"] and not names[LEDGER]["external"]
    assert names[LEDGER]["certificate"]["expires_in_seconds"] == 2 * 86400


def test_a_refusal_seen_from_both_ends_is_one_failure_with_the_rejecters_step() -> None:
    feed = mesh_view(sidecars(), [], NOW)["failures"]
    revoked = [f for f in feed if f["reason"] == "certificate_revoked"]
    assert len(revoked) == 1, revoked
    (f,) = revoked
    assert (f["rejected_by"], f["rejected"], f["origin"]) == (LEDGER, GW, "local")
    assert f["step"] == "certificate_verify" and f["detail"] == "serial ab revoked"
    assert f["count"] == 1 and f["seen_by"] == "gateway-sidecar, ledger-sidecar"
    (ca,) = [f for f in feed if f["reason"] == "unknown_ca"]
    assert ca["count"] == 2 and ca["rejected"] == "unknown"


def test_an_old_success_is_healthy_and_a_recent_bad_record_only_degrades() -> None:
    scs = sidecars()
    for sc in scs:
        sc.handshakes.clear()
    scs[1].add_handshake(
        doc("ledger-sidecar", "server", LEDGER, GW, "success", "none", id=20,
            at=(NOW - dt.timedelta(minutes=5)).isoformat())
    )  # fmt: skip
    scs[1].add_handshake(
        doc("ledger-sidecar", "server", LEDGER, GW, "decrypt_error", "local", id=21,
            kind="session", step="data")
    )  # fmt: skip
    edge = next(e for e in mesh_view(scs, [], NOW)["edges"] if e["client"] == GW)
    assert edge["health"] == "degraded" and edge["recent_ok"] == 0


def test_the_same_handshake_twice_is_kept_once_and_a_new_instance_is_new() -> None:
    sc = SidecarState("http://x", instance="one")
    assert sc.add_handshake({"id": 1}) is not None
    assert sc.add_handshake({"id": 1}) is None
    sc.instance = "two"  # the sidecar restarted: its ids start again
    assert sc.add_handshake({"id": 1}) is not None and len(sc.handshakes) == 2


METRICS = """\
# HELP mtlsdemo_build_info Version and component of this process.
# TYPE mtlsdemo_build_info gauge
mtlsdemo_build_info{component="gateway",version="0.1.0"} 1.0
# HELP mtls_grpc_authorizations_total Caller identity checks on gRPC servers.
# TYPE mtls_grpc_authorizations_total counter
mtls_grpc_authorizations_total{decision="allow",peer="spiffe://mtls-demo.local/ns/default/sa/cli"} 70.0
mtls_grpc_authorizations_total{decision="deny",peer="spiffe://mtls-demo.local/ns/default/sa/ledger"} 2.0
# HELP mtls_crl_revoked_serials Serial numbers listed in the CRLs loaded.
# TYPE mtls_crl_revoked_serials gauge
mtls_crl_revoked_serials 1.0
"""


def test_native_grpc_calls_and_denials_come_from_metrics() -> None:
    component, samples = parse_metrics(METRICS)
    ms = MetricsState(
        "http://127.0.0.1:9102/metrics", up=True, component=component, samples=samples
    )
    view = mesh_view(sidecars(), [ms], NOW)
    native = next(e for e in view["edges"] if e["path"] == "native gRPC" and e["client"] == CLI)
    assert native["server"] == GW and native["ok"] == 70 and native["health"] == "healthy"
    (deny,) = [f for f in view["failures"] if f["path"] == "native gRPC"]
    assert (deny["rejected_by"], deny["rejected"], deny["count"]) == ("gateway", LEDGER, 2)
    assert deny["step"] == "authorization"
    assert view["certificates"]["crl"] == [{"service": "gateway", "revoked_serials": 1}]


def test_addresses_and_names() -> None:
    assert admin_url("127.0.0.1:9901") == "http://127.0.0.1:9901"
    assert metrics_url("127.0.0.1:9102") == "http://127.0.0.1:9102/metrics"
    assert metrics_url("http://h:1/custom") == "http://h:1/custom"
    assert short_name(LEDGER) == "ledger" and short_name("") == "unknown"


def test_a_service_that_loads_no_crl_is_not_said_to_list_zero() -> None:
    """Every process exports the CRL gauges: the ledger, which loads no CRL, was shown
    as "CRL lists 0 revoked serial(s)"."""
    text = METRICS.replace("mtls_crl_revoked_serials 1.0", "mtls_crl_revoked_serials 0.0")
    text += (
        "# HELP mtls_crl_next_update_timestamp_seconds nextUpdate of the CRL loaded.\n"
        "# TYPE mtls_crl_next_update_timestamp_seconds gauge\n"
        "mtls_crl_next_update_timestamp_seconds 0.0\n"
    )
    component, samples = parse_metrics(text)
    ms = MetricsState(
        "http://127.0.0.1:9101/metrics", up=True, component=component, samples=samples
    )
    assert mesh_view(sidecars(), [ms], NOW)["certificates"]["crl"] == []
    loaded = text.replace(
        "mtls_crl_next_update_timestamp_seconds 0.0", "mtls_crl_next_update_timestamp_seconds 1.8e9"
    )
    component, samples = parse_metrics(loaded)
    ms = MetricsState(
        "http://127.0.0.1:9101/metrics", up=True, component=component, samples=samples
    )
    assert mesh_view(sidecars(), [ms], NOW)["certificates"]["crl"] == [
        {"service": "gateway", "revoked_serials": 0}
    ]


def test_a_refusal_only_the_refused_side_saw_stays_an_unverified_claim() -> None:
    """An alert in clear that the named refuser never logged (an injected one, or a
    refuser the console does not watch): the failure row keeps origin
    remote_unverified, which the page marks "⚠ claim"; with the refuser's own
    record the row is its word (origin local, the test above)."""
    gw = SidecarState("http://127.0.0.1:9901", up=True, instance="a")
    gw.status = status("gateway-sidecar", GW, [])
    gw.add_handshake(
        doc("gateway-sidecar", "client", GW, LEDGER, "certificate_revoked", "remote_unverified",
            step="certificate_verify", detail="an alert in clear says the server rejected", id=4)
    )  # fmt: skip
    (f,) = mesh_view([gw], [], NOW)["failures"]
    assert (f["rejected_by"], f["origin"]) == (LEDGER, "remote_unverified")


def test_an_edge_says_whether_both_identities_are_quantum_safe() -> None:
    """From the sidecar's own key type and the peer's CertificateVerify scheme."""

    def one(gw_key: str, cli_sig: str) -> str:
        gw = SidecarState("http://127.0.0.1:9901", up=True, instance="a")
        gw.status = status(
            "gateway-sidecar",
            GW,
            [{"role": "server", "local": GW, "peer": CLI, "suite": "S", "ok": 1, "failed": 0,
              "peer_signature": cli_sig}],
        )  # fmt: skip
        gw.status["certificate"]["key_type"] = gw_key
        view = mesh_view([gw], [], NOW)
        (edge,) = view["edges"]
        return edge["identities"]

    assert one("ml-dsa-65", "MLDSA65") == "quantum-safe"
    assert one("ml-dsa-65", "ECDSA_SECP256R1_SHA256") == "partly quantum-safe"
    assert one("ecdsa-p256", "ECDSA_SECP256R1_SHA256") == "classic"
    assert one("ecdsa-p256", "") == ""  # the peer's signature not seen yet: no claim


def test_an_edge_whose_sidecar_logs_keys_says_so_and_others_do_not() -> None:
    scs = sidecars()
    view = mesh_view(scs, [], NOW)
    assert all(e["keys_logged"] is None for e in view["edges"])  # the default: no key log
    scs[1].status["keylog"] = {"path": "/tmp/sidecars.keys", "sessions": 3, "warning": "…"}
    view = mesh_view(scs, [], NOW)
    edge = next(e for e in view["edges"] if (e["client"], e["server"]) == (GW, LEDGER))
    assert edge["keys_logged"] == (
        "keys logged by ledger-sidecar (/tmp/sidecars.keys): anyone with the file reads this traffic"
    )


def test_a_refusal_known_only_from_an_alert_in_clear_is_called_a_claim() -> None:
    """The model's residual (c): the edge text named the peer for a clear-text refusal
    without the claim mark the failures table has."""
    gw, _ledger = sidecars()
    view = mesh_view([gw], [], NOW)
    edge = next(e for e in view["edges"] if (e["client"], e["server"]) == (GW, LEDGER))
    assert edge["health"] == "failing"
    assert "rejected by ledger, its claim: the alert came in clear" in edge["health_text"]


def test_unverified_peers_are_told_apart_by_what_their_certificates_claim() -> None:
    """Two unknown_ca refusals of unverified peers: an impostor claiming our gateway's
    SPIFFE ID and a self-signed "CN=gateway" (the tour's openssl example) are two rows,
    each with its claim; a peer that refused before sending a certificate claims
    nothing (the downgrade's row: the peer, unidentified)."""
    ledger = SidecarState("http://127.0.0.1:9902", up=True, instance="b")
    ledger.status = status("ledger-sidecar", LEDGER, [])
    for n, cert in ((1, {"identity": GW}), (2, {"identity": "CN=gateway"}), (3, {"identity": GW})):
        ledger.add_handshake(
            doc("ledger-sidecar", "server", LEDGER, "unknown", "unknown_ca", "local",
                step="certificate_verify", id=n, peer_certificates=[cert])
        )  # fmt: skip
    ledger.add_handshake(
        doc("ledger-sidecar", "server", LEDGER, "unknown", "bad_signature", "remote_unverified",
            step="certificate_verify", id=4, peer_certificates=[])
    )  # fmt: skip
    rows = {(f["reason"], f["peer_claimed"]): f for f in mesh_view([ledger], [], NOW)["failures"]}
    assert set(rows) == {
        ("unknown_ca", GW),
        ("unknown_ca", "CN=gateway"),
        ("bad_signature", ""),
    }
    assert rows[("unknown_ca", GW)]["count"] == 2
    assert rows[("bad_signature", "")]["rejected_by"] == "unknown"


def test_a_dry_run_policy_s_would_deny_count_sits_on_its_edge() -> None:
    """The server's sidecar counts the connections a dry-run policy would have refused
    (by peer and rule); the console puts them on that client -> server edge."""
    scs = sidecars()
    ledger = next(sc for sc in scs if sc.status and sc.status["identity"] == LEDGER)
    ledger.status["authz_policy"] = {
        "file": "p.yaml",
        "would_deny": [
            {"peer": GW, "rule": "gateway-never#0", "count": 3},
            {"peer": GW, "rule": "typo#1", "count": 2},
        ],
    }
    edges = {(e["client"], e["server"]): e for e in mesh_view(scs, [], NOW)["edges"]}
    assert edges[(GW, LEDGER)]["would_deny"] == {"count": 5, "rules": ["gateway-never#0", "typo#1"]}
    assert all(e["would_deny"] is None for k, e in edges.items() if k != (GW, LEDGER))
