"""The console's picture of the mesh, built from what the watchers saw: nodes
(workloads), edges (client -> server identity pairs), the failures feed (who
rejected whom) and the certificates. Pure: state and time in, JSON-able out.

Each sidecar sees its side of an edge; an edge's counts are the larger of the
two views (a handshake is counted by both ends, a connection refused before the
hello by one), and the panel shows each view."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from mtlsdemo.console.sources import MetricsState, SidecarState
from mtlsdemo.trust.spiffe import SpiffeId, SpiffeIdError

RECENT = dt.timedelta(seconds=60)  # the window of rates and "degraded"
UNKNOWN = "unknown"


def short_name(identity: str) -> str:
    """spiffe://td/ns/default/sa/ledger -> ledger (the SPIFFE ID is always shown too)."""
    if identity.startswith("spiffe://"):
        return identity.rstrip("/").rsplit("/", 1)[-1]
    return identity or UNKNOWN


def _parse(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at)


def _node(identity: str) -> dict[str, Any]:
    return {
        "id": identity,
        "name": short_name(identity) if identity != UNKNOWN else "unverified peer",
        "external": True,  # no sidecar of ours speaks for it
        "sidecars": [],
        "certificate": None,
    }


def _identities(client_key: str, server_key: str) -> str:
    """quantum-safe (both ML-DSA), classic (neither), partly, or "" (not known yet)."""
    if not client_key or not server_key:
        return ""
    pq = [k.lower().replace("-", "").startswith("mldsa") for k in (client_key, server_key)]
    return "quantum-safe" if all(pq) else "partly quantum-safe" if any(pq) else "classic"


def _trust_domain(identity: str) -> str | None:
    try:
        return SpiffeId.parse(identity).trust_domain
    except SpiffeIdError:
        return None


def nodes_and_edges(
    sidecars: list[SidecarState], metrics: list[MetricsState], now: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    # an identity's key type (its own sidecar's /status) or signature scheme (a peer's
    # CertificateVerify, seen by the other side): is it quantum-safe
    keys: dict[str, str] = {}
    # the identities whose own sidecar appends session secrets to a key log (--keylog)
    logging: dict[str, str] = {}

    def node(identity: str) -> dict[str, Any]:
        return nodes.setdefault(identity, _node(identity))

    def edge(client: str, server: str, path: str) -> dict[str, Any]:
        node(client), node(server)
        return edges.setdefault(
            (client, server, path),
            {
                "id": f"{client} -> {server} ({path})",
                "client": client,
                "server": server,
                "path": path,
                "suites": [],
                # federation: each side verified the other against the bundle of the
                # trust domain its SPIFFE ID names (None: not an SVID)
                "trust_domains": {"client": _trust_domain(client), "server": _trust_domain(server)},
                "ok": 0,
                "failed": 0,
                "resumed": 0,  # of the ok handshakes, from a session ticket
                "seen_by": [],
                "recent_ok": 0,
                "recent_failed": 0,
                "last": None,
                # connections a dry-run policy would refuse: {"count", "rules"} or None
                "would_deny": None,
            },
        )

    for sc in sidecars:
        st = sc.status
        if st is None:
            continue
        me = node(st["identity"])
        me["external"] = False
        me["sidecars"].append({"name": st.get("name", sc.url), "url": sc.url, "up": sc.up})
        cert = st.get("certificate", {})
        keys[st["identity"]] = str(cert.get("key_type", ""))
        if st.get("keylog"):
            logging[st["identity"]] = f"{st.get('name', sc.url)} ({st['keylog'].get('path', '?')})"
        me["certificate"] = {
            "serial": cert.get("serial"),
            "key_type": cert.get("key_type"),
            "not_after": cert.get("not_after"),
            "expires_in_seconds": _seconds_left(cert.get("not_after"), now),
            "reload_generation": cert.get("reload_generation"),
            "status_next_update": (cert.get("stapled_status") or {}).get("next_update"),
        }
        by_pair: dict[tuple[str, str], dict[str, Any]] = {}
        for e in st.get("edges", []):
            client, server = (
                (e["local"], e["peer"]) if e["role"] == "client" else (e["peer"], e["local"])
            )
            view = by_pair.setdefault(
                (client, server), {"sidecar": st.get("name"), "ok": 0, "failed": 0, "resumed": 0}
            )
            view["ok"] += e["ok"]
            view["failed"] += e["failed"]
            view["resumed"] += e.get("resumed", 0)  # (a sidecar before MTD/1.1 has none)
            if e.get("peer_signature"):
                keys.setdefault(e["peer"], e["peer_signature"])
            ed = edge(client, server, "MTD/1")
            if e["suite"] != "none" and e["suite"] not in ed["suites"]:
                ed["suites"].append(e["suite"])
        for w in (st.get("authz_policy") or {}).get("would_deny", []):
            ed = edge(w["peer"], st["identity"], "MTD/1")  # decided on the server's side
            wd = ed["would_deny"] = ed["would_deny"] or {"count": 0, "rules": []}
            wd["count"] += w["count"]
            if w["rule"] not in wd["rules"]:
                wd["rules"].append(w["rule"])
        for (client, server), view in by_pair.items():
            ed = edge(client, server, "MTD/1")
            ed["seen_by"].append(view)
            ed["ok"], ed["failed"] = max(ed["ok"], view["ok"]), max(ed["failed"], view["failed"])
            ed["resumed"] = max(ed["resumed"], view["resumed"])
    # recent handshakes: rates, health and the last outcome, per edge
    for doc in _all_handshakes(sidecars):
        seen = edges.get((doc["client"], doc["server"], "MTD/1"))
        if seen is None:
            continue
        if now - _parse(doc["at"]) <= RECENT:
            seen["recent_ok" if doc["outcome"] == "success" else "recent_failed"] += 1
        if doc.get("kind") == "session":
            continue  # a bad record: "degraded" above, never the edge's handshake verdict
        if seen["last"] is None or doc["at"] > seen["last"]["at"]:
            seen["last"] = {k: doc[k] for k in ("at", "outcome", "origin", "rejected_by", "key")}
    # native gRPC mTLS, from the services' metrics: who called, allowed or denied
    for ms in metrics:
        if not ms.up or not ms.component:
            continue
        server = next(
            (n["id"] for n in nodes.values() if n["name"] == ms.component and not n["external"]),
            ms.component,
        )
        for labels, value in ms.values("mtls_grpc_authorizations_total"):
            ed = edge(labels.get("peer", UNKNOWN), server, "native gRPC")
            key = "ok" if labels.get("decision") == "allow" else "failed"
            ed[key] += int(value)
            ed["suites"] = ["TLS 1.3"]
        node(server)
    out_edges = []
    for ed in edges.values():
        ed["identities"] = _identities(keys.get(ed["client"], ""), keys.get(ed["server"], ""))
        who = [logging[i] for i in (ed["client"], ed["server"]) if i in logging]
        ed["keys_logged"] = (
            f"keys logged by {', '.join(who)}: anyone with the file reads this traffic"
            if who and ed["path"] == "MTD/1"
            else None
        )
        ed["health"], ed["health_text"] = _health(ed)
        ed["rate_per_minute"] = ed["recent_ok"] + ed["recent_failed"]
        out_edges.append(ed)
    return list(nodes.values()), out_edges


def _health(ed: dict[str, Any]) -> tuple[str, str]:
    last = ed["last"]
    if last is not None and last["outcome"] != "success":
        who = short_name(last["rejected_by"]) if last["rejected_by"] else "?"
        if last.get("origin") == "remote_unverified":
            # an alert in clear: only the peer's claim, as the failures table marks it
            who += ", its claim: the alert came in clear"
        return "failing", f"failing: last handshake {last['outcome']} (rejected by {who})"
    if ed["recent_failed"]:
        return "degraded", f"degraded: {ed['recent_failed']} failures in the last minute"
    if ed["ok"] or ed["recent_ok"]:
        return "healthy", "healthy: handshakes succeed"
    if ed["failed"]:
        return "failing", f"failing: {ed['failed']} failed, none succeeded"
    return "idle", "idle: no handshake yet"


def _seconds_left(at: str | None, now: dt.datetime) -> int | None:
    """Whole minutes, in seconds: the page shows minutes, and a value that changed
    every second would make every snapshot new (and the page redraw)."""
    return None if not at else int((_parse(at) - now).total_seconds()) // 60 * 60


def _all_handshakes(sidecars: Iterable[SidecarState]) -> list[dict[str, Any]]:
    return [doc for sc in sidecars for doc in sc.handshakes.values()]


def _claimed(doc: dict[str, Any]) -> str:
    """What an unverified peer's certificate says it is ("" when the peer is verified,
    or sent none before the handshake ended)."""
    if doc["peer"] != UNKNOWN or not doc.get("peer_certificates"):
        return ""
    facts = doc["peer_certificates"][0]
    return str(facts.get("identity") or facts.get("subject") or "")


def failures(sidecars: list[SidecarState], metrics: list[MetricsState]) -> list[dict[str, Any]]:
    """Who rejected whom, why, at which step. Both ends usually report one refusal
    (the rejecter as local, the other from the alert): one item, counted as the
    larger view, with the step the rejecter stopped in."""
    feed: dict[tuple[str, ...], dict[str, Any]] = {}
    for doc in _all_handshakes(sidecars):
        if doc["outcome"] == "success":
            continue
        rejected_by = doc["rejected_by"] or doc["local"]
        rejected = doc["peer"] if rejected_by == doc["local"] else doc["local"]
        # an unverified peer is told apart by what its certificate claims (an impostor
        # naming our gateway is not a self-signed "CN=gateway" with no SPIFFE ID)
        claimed = _claimed(doc)
        key = (
            "MTD/1", rejected_by, rejected, claimed, doc["outcome"], doc.get("kind", "handshake")
        )  # fmt: skip
        item = feed.get(key)
        if item is None:
            item = feed[key] = {
                "path": "MTD/1",
                "rejected_by": rejected_by,
                "rejected": rejected,
                "peer_claimed": claimed,
                "reason": doc["outcome"],
                "origin": doc["origin"],
                "step": doc.get("step", ""),
                "views": {},
                "last_seen": doc["at"],
                "detail": doc["detail"],
                "handshake": doc["key"],
            }
        views = item["views"]
        views[doc["sidecar"]] = views.get(doc["sidecar"], 0) + 1
        local = doc["origin"] == "local"
        # the rejecter's own record says best what failed: prefer it
        if local or item["origin"] != "local":
            item.update(step=doc.get("step", ""), detail=doc["detail"], origin=doc["origin"])
            if local or doc["at"] >= item["last_seen"]:
                item["handshake"] = doc["key"]
        item["last_seen"] = max(item["last_seen"], doc["at"])
    out = []
    for item in feed.values():
        views = item.pop("views")
        item["count"] = max(views.values())
        item["seen_by"] = ", ".join(sorted(views))
        out.append(item)
    for ms in metrics:
        if not ms.up:
            continue
        who = ms.component or ms.url
        for labels, value in ms.values("mtls_grpc_authorizations_total"):
            if labels.get("decision") == "deny" and value > 0:
                out.append(
                    _native(
                        who,
                        labels.get("peer", UNKNOWN),
                        "identity_not_allowed",
                        "local",
                        value,
                        who,
                        step="authorization",
                    )
                )
        for labels, value in ms.values("mtls_native_handshake_failures_total"):
            if value > 0:
                # diagnosed by the caller (this service): the peer is the server it called
                origin = labels.get("origin", "")
                peer = labels.get("peer", UNKNOWN)
                by, rejected = (who, peer) if origin == "local" else (peer, who)
                out.append(_native(by, rejected, labels.get("reason", "?"), origin, value, who))
    return sorted(out, key=lambda f: f.get("last_seen") or "", reverse=True)


def _native(
    by: str,
    rejected: str,
    reason: str,
    origin: str,
    count: float,
    seen_by: str,
    step: str = "certificate_verify",
) -> dict[str, Any]:
    return {
        "path": "native gRPC",
        "rejected_by": by,
        "rejected": rejected,
        "reason": reason,
        "origin": origin,
        "seen_by": seen_by,
        "step": step,  # authorization: after a good TLS handshake, the caller's identity
        "count": int(count),
        "last_seen": None,
        "detail": "counted by the service's /metrics (a gRPC server cannot see "
        "each handshake it refuses)",
        "handshake": None,
    }


def certificates(
    sidecars: list[SidecarState],
    metrics: list[MetricsState],
    agent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    identities = [
        {"sidecar": sc.certificates.get("name", sc.url), **sc.certificates}
        for sc in sidecars
        if sc.certificates is not None
    ]
    cas: dict[str, dict[str, Any]] = {}
    for ident in identities:
        for ca in ident.get("trust_bundle", []):
            cas.setdefault(ca["fingerprint_sha256"], ca)
    # every process exports the CRL gauges (0 when it loads none): a service is listed
    # only when it holds a CRL (a nextUpdate) or it lists something
    crl = [
        {"service": ms.component or ms.url, "revoked_serials": int(v)}
        for ms in metrics
        if ms.up
        for _labels, v in ms.values("mtls_crl_revoked_serials")
        if v or any(nu for _l, nu in ms.values("mtls_crl_next_update_timestamp_seconds"))
    ]
    # identities from a Workload API: each workload's SVID, seconds left, its rotations
    return {"identities": identities, "cas": list(cas.values()), "crl": crl, "agent": agent}


def mesh_view(
    sidecars: list[SidecarState],
    metrics: list[MetricsState],
    now: dt.datetime,
    agent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    nodes, edges = nodes_and_edges(sidecars, metrics, now)
    return {
        "generated_at": now.isoformat(timespec="milliseconds"),
        "sources": [
            {
                "kind": "sidecar admin",
                "url": sc.url,
                "name": sc.name,
                "up": sc.up,
                "live": sc.live,
                "error": sc.error,
            }
            for sc in sidecars
        ]
        + [
            {
                "kind": "metrics",
                "url": ms.url,
                "name": ms.component,
                "up": ms.up,
                "live": False,
                "error": ms.error,
            }
            for ms in metrics
        ],
        "nodes": nodes,
        "edges": edges,
        "failures": failures(sidecars, metrics),
        "certificates": certificates(sidecars, metrics, agent),
    }


def handshakes_for(
    sidecars: list[SidecarState], client: str | None, server: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    docs = [
        d
        for d in _all_handshakes(sidecars)
        if (client is None or d["client"] == client) and (server is None or d["server"] == server)
    ]
    return sorted(docs, key=lambda d: d["at"], reverse=True)[:limit]
