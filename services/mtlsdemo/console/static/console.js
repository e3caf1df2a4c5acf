// mtlsdemo console: plain JavaScript, no build step; one vendored library (dagre,
// the mesh's layout). The server sends the whole mesh as JSON (SSE `mesh`), each
// finished handshake (SSE `handshake`) and break reports (SSE `break`); everything
// is drawn here as SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STEPS = {
  hello: { n: 1, text: "hello" },
  certificate_verify: { n: 2, text: "certificate verification" },
  key_exchange: { n: 3, text: "key exchange" },
  finished: { n: 4, text: "finished → encrypted data" },
  data: { n: 4, text: "encrypted data" },
  alert: { n: 0, text: "alert" },
};
const NAMES = {
  CLIENT_HELLO: "ClientHello", SERVER_HELLO: "ServerHello", CERTIFICATE: "Certificate",
  SERVER_KEY_SHARE: "ServerKeyShare", CERTIFICATE_REQUEST: "CertificateRequest",
  CERTIFICATE_VERIFY: "CertificateVerify", CLIENT_KEY_EXCHANGE: "ClientKeyExchange",
  FINISHED: "Finished", NEW_SESSION_TICKET: "NewSessionTicket",
};
const state = { mesh: null, edge: null, list: [], selected: null, options: null, breakCommand: "" };

// ---------------------------------------------------------------- helpers
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}
// a SPIFFE ID that may wrap only after a "/" (never inside "gateway" or "mtls-demo.local")
function idLine(id) {
  const parts = String(id).split(/(?<=\/)/);
  const seg = (p) => h("span", { class: "seg", text: p });  // nowrap: not even at "mtls-"
  return h("div", { class: "id", title: id }, ...parts.flatMap((p, n) => (n ? [h("wbr"), seg(p)] : [seg(p)])));
}
// an identity under its short name; for an unverified peer, what its certificate claims
function whoLine(id, claimed, none) {
  if (id !== "unknown") return idLine(id);
  return h("div", { class: "id", "data-testid": "claimed" }, claimed ? h("span", { text: "claims " }) : null,
    claimed ? idLine(claimed) : h("span", { text: `(${none})` }), claimed ? h("span", { text: " — not verified" }) : null);
}
function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid) e.append(kid);
  return e;
}
const short = (id) => (!id ? "?" : id === "unknown" ? "unverified peer" : id.startsWith("spiffe://") ? id.replace(/\/+$/, "").split("/").pop() : id);
// UTC, as the CLI and the logs print times (a local 12-hour clock beside them misled)
const time = (iso) => (iso ? new Date(iso).toISOString().slice(11, 19) + "Z" : "—");
function left(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  if (seconds <= 0) return "EXPIRED";
  const d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}
// the per-start token the console put in this page: changes must carry it
const TOKEN = document.querySelector('meta[name="mtlsdemo-token"]').content;
async function api(path, init) {
  if (init && init.method === "POST") {
    init = { ...init, headers: { "Content-Type": "application/json", "X-Mtlsdemo-Token": TOKEN, ...init.headers } };
  }
  const r = await fetch(path, init);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// ---------------------------------------------------------------- live feed
function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => { live.className = "live on"; live.textContent = "live"; });
  es.addEventListener("error", () => { live.className = "live off"; live.textContent = "reconnecting…"; });
  es.addEventListener("mesh", (ev) => { state.mesh = JSON.parse(ev.data); render(); });
  es.addEventListener("handshake", (ev) => onHandshake(JSON.parse(ev.data)));
  es.addEventListener("break", (ev) => onBreak(JSON.parse(ev.data)));
}

// A section is redrawn only when what it shows changed: rebuilding rows under the
// pointer between a press and its release would swallow the click.
const drawn = {};
function redraw(name, data, draw) {
  const key = JSON.stringify(data);
  if (drawn[name] === key) return;
  drawn[name] = key;
  draw();
}

function render() {
  const m = state.mesh;
  if (!m) return;
  const selected = state.edge ? state.edge.id : null;
  redraw("sources", m.sources, () => renderSources(m.sources));
  redraw("mesh", [m.nodes, m.edges, selected], () => renderMesh(m));
  redraw("edges", [m.edges, selected], () => renderEdges(m.edges));
  redraw("failures", m.failures, () => renderFailures(m.failures));
  redraw("certificates", m.certificates, () => renderCertificates(m.certificates));
}

function renderSources(sources) {
  const nav = document.getElementById("sources");
  nav.replaceChildren(...sources.map((src) => h("span", {
    class: "src " + (src.up ? "up" : "down"), "data-testid": "source", "data-up": String(src.up),
    title: src.error || "",
  }, `${src.up ? "✓" : "✗"} ${src.kind} ${src.name || ""} ${src.url}${src.up ? (src.live ? " (live)" : "") : " — " + src.error}`)));
}

// ---------------------------------------------------------------- mesh graph
// The layout is dagre's (vendored, static/VENDORED.md): a layered graph layout that
// gives every edge label a place of its own, so labels never cover each other, a
// node, or another edge's middle however many edges the README's steps add (the
// hand-written columns before it did).
const ID_LINE = 30;  // characters per line of a SPIFFE ID inside its box
function wrapId(id) {
  // break after a "/" so each line stays a readable part of the path
  const lines = [];
  let line = "";
  for (const part of id.split(/(?<=\/)/)) {
    if (line && (line + part).length > ID_LINE) { lines.push(line); line = ""; }
    line += part;
    while (line.length > ID_LINE) { lines.push(line.slice(0, ID_LINE)); line = line.slice(ID_LINE); }
  }
  if (line) lines.push(line);
  return lines;
}

function edgeLines(e) {
  return [
    `${e.path}: ${e.health}`,
    e.path !== "MTD/1" ? `${e.ok} calls allowed · ${e.failed} denied` : `ok ${e.ok} · failed ${e.failed} · ${e.rate_per_minute}/min`,
  ];
}

function layout(nodes, edges) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  // a cycle (the wrong-identity step's ledger → gateway call) is broken at its lightest
  // edge, so the mesh's own traffic keeps flowing left to right
  g.setGraph({ rankdir: "LR", acyclicer: "greedy", nodesep: 36, ranksep: 70, edgesep: 24, marginx: 12, marginy: 12 });
  for (const n of nodes) {
    const ids = wrapId(n.id);
    const w = Math.max(190, 6.3 * Math.max(n.name.length * 1.4, ...ids.map((l) => l.length)) + 24);
    g.setNode(n.id, { width: w, height: 40 + 13 * ids.length + 10, ids });
  }
  edges.forEach((e, i) => {
    if (!g.hasNode(e.client) || !g.hasNode(e.server)) return;
    const lines = edgeLines(e);
    const weight = e.path === "MTD/1" && e.ok ? 8 : e.ok ? 4 : 1;
    g.setEdge(e.client, e.server, { width: Math.max(...lines.map((l) => l.length)) * 6.4 + 14, height: 34, labelpos: "c", lines, weight }, String(i));
  });
  dagre.layout(g);
  return g;
}

// a smooth path through dagre's points (each bend rounded at its point)
function curve(points) {
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i], q = points[i + 1];
    d += ` Q${p.x},${p.y} ${(p.x + q.x) / 2},${(p.y + q.y) / 2}`;
  }
  const last = points[points.length - 1];
  return d + ` L${last.x},${last.y}`;
}

function renderMesh(m) {
  const box = document.getElementById("mesh");
  if (!m.nodes.length) { box.replaceChildren(h("p", { class: "note", text: "no workload seen yet: are the sidecars' admin endpoints reachable? (see the sources above)" })); return; }
  const g = layout(m.nodes, m.edges);
  const { width, height } = g.graph();
  // drawn at its own size (never blown up), shrunk to fit a narrow window
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, style: `max-width: ${width}px`, role: "img", "aria-label": "the mesh: workloads and edges" });
  svg.append(s("defs", {}, ["healthy", "degraded", "failing", "idle"].map((k) =>
    s("marker", { id: "arrow-" + k, viewBox: "0 0 10 10", refX: 10, refY: 5, markerUnits: "userSpaceOnUse", markerWidth: 14, markerHeight: 14, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", fill: getComputedStyle(document.documentElement).getPropertyValue(k === "healthy" ? "--ok" : k === "degraded" ? "--warn" : k === "failing" ? "--bad" : "--idle") })))));
  const paths = [], labels = [];
  for (const ref of g.edges()) {
    const e = m.edges[Number(ref.name)], at = g.edge(ref);
    const sel = state.edge && state.edge.id === e.id;
    const attrs = (extra) => ({
      class: `edge ${e.health}${e.path !== "MTD/1" ? " native" : ""}${sel ? " selected" : ""}`,
      "data-client": e.client, "data-server": e.server, "data-health": e.health, onclick: () => selectEdge(e), ...extra,
    });
    const d = curve(at.points);
    // the visible line, and under it a wide transparent one: the whole length clicks
    paths.push(s("g", attrs({ "data-testid": "mesh-edge", tabindex: 0 }),
      s("title", { text: `${e.client} → ${e.server}\n${e.health_text}${e.keys_logged ? "\n⚠ " + e.keys_logged : ""}` }),
      s("path", { class: "hit", d }),
      s("path", { class: "line", d, "marker-end": `url(#arrow-${e.health})` })));
    labels.push(s("g", attrs({ "data-testid": "mesh-edge-label" }),
      s("title", { text: `${e.client} → ${e.server}\n${e.health_text}` }),
      s("rect", { class: "label", x: at.x - at.width / 2, y: at.y - at.height / 2, width: at.width, height: at.height, rx: 4 }),
      s("text", { x: at.x, y: at.y - 3, "text-anchor": "middle", text: at.lines[0] }),
      s("text", { x: at.x, y: at.y + 12, "text-anchor": "middle", text: at.lines[1] })));
  }
  const nodes = [];
  for (const n of m.nodes) {
    const p = g.node(n.id);
    const c = n.certificate;
    // an outside caller that speaks MTD/1 runs a sidecar inside its own process (`--transport mtd`)
    const inProcess = n.external && m.edges.some((e) => e.client === n.id && e.path === "MTD/1");
    const sub = inProcess ? "its sidecar runs in its process" : n.external ? "no sidecar of ours" : `cert ${left(c && c.expires_in_seconds)} left · reload #${c ? c.reload_generation : "?"}`;
    const top = p.y - p.height / 2;
    nodes.push(s("g", { class: "node" + (n.external ? " external" : ""), "data-testid": "mesh-node", "data-id": n.id },
      s("title", { text: n.id }),
      s("rect", { x: p.x - p.width / 2, y: top, width: p.width, height: p.height, rx: 10 }),
      s("text", { class: "name", x: p.x, y: top + 19, "text-anchor": "middle", text: n.name }),
      ...p.ids.map((line, k) => s("text", { class: "sub id-line", x: p.x, y: top + 35 + 13 * k, "text-anchor": "middle", text: line })),
      s("text", { class: "sub", x: p.x, y: top + 35 + 13 * p.ids.length + 3, "text-anchor": "middle", text: sub })));
  }
  svg.append(...paths, ...nodes, ...labels);  // labels above the nodes and lines
  box.replaceChildren(svg);
}

// Post-quantum or not, in words: a hybrid suite keeps recorded traffic closed to a
// future quantum computer ("harvest now, decrypt later"); X25519 alone does not.
const quantumSafe = (suite) => suite.startsWith("X25519MLKEM768");
function kxLabel(suites) {
  if (!suites.length) return null;
  const safe = suites.every(quantumSafe);
  return h("div", { class: safe ? "pq" : "note", "data-testid": "edge-kx", "data-quantum-safe": String(safe),
    title: safe ? "X25519 + ML-KEM-768: an attacker must break both to open a recorded session"
      : "X25519 alone: a recorded session could be opened by a future quantum computer",
    text: safe ? "quantum-safe key exchange" : suites.some(quantumSafe) ? "partly quantum-safe key exchange" : "classic key exchange" });
}

// ML-DSA on both ends (FIPS 204): a future quantum computer could not forge either
// side's CertificateVerify; ECDSA/RSA identities it could (impersonation, not decryption)
function idLabel(kind) {
  if (!kind) return null;
  const safe = kind === "quantum-safe";
  return h("div", { class: safe ? "pq" : "note", "data-testid": "edge-ids", "data-quantum-safe": String(safe),
    title: safe ? "ML-DSA certificates on both sides: their signatures stay unforgeable for a quantum computer"
      : "a classic (ECDSA/RSA) identity: a future quantum computer could forge its signature",
    text: `${kind} identities` });
}

// two trust domains on one edge: each side checked the other against the bundle of the
// peer's own domain (federation), never its own CA
function domainsLabel(td) {
  if (!td || !td.client || !td.server || td.client === td.server) return null;
  return h("div", { class: "note", "data-testid": "edge-federated",
    title: "SPIFFE federation: a peer is verified against the bundle of the trust domain its ID names",
    text: `federated: the server checked the client against ${td.client}'s bundle, the client the server against ${td.server}'s` });
}

function renderEdges(edges) {
  const body = document.querySelector("#edges tbody");
  body.replaceChildren(...edges.map((e) => h("tr", {
    class: "clickable" + (state.edge && state.edge.id === e.id ? " selected" : ""), "data-testid": "edge-row",
    "data-client": e.client, "data-server": e.server, "data-path": e.path, onclick: () => selectEdge(e),
  },
    h("td", {}, h("b", { text: short(e.client) }), idLine(e.client)),
    h("td", {}, h("b", { text: short(e.server) }), idLine(e.server)),
    h("td", { text: e.path }),
    h("td", {}, h("span", { text: e.suites.join(", ") || "—" }), kxLabel(e.suites), idLabel(e.identities), domainsLabel(e.trust_domains),
      e.keys_logged ? h("div", { class: "keylog", "data-testid": "edge-keylog", text: "⚠ " + e.keys_logged }) : null),
    h("td", { "data-testid": "edge-ok-cell" }, h("span", { text: e.ok, "data-testid": "edge-ok" }),
      e.resumed ? h("div", { class: "note", text: `${e.resumed} resumed`, "data-testid": "edge-resumed" }) : null),
    h("td", {}, h("span", { text: e.failed, "data-testid": "edge-failed" }),
      e.would_deny ? h("div", { class: "note unverified", "data-testid": "edge-would-deny",
        title: "a policy in dry-run mode enforces nothing: these connections were allowed, and would be refused once it is enforced",
        text: `would deny ${e.would_deny.count} (dry-run: ${e.would_deny.rules.join(", ")})` }) : null),
    h("td", { text: `${e.recent_ok} ok, ${e.recent_failed} failed` }),
    h("td", {}, h("span", { class: "health " + e.health, text: e.health_text, "data-testid": "edge-health" }),
      e.seen_by.length ? h("div", { class: "note", text: "seen by " + e.seen_by.map((v) => `${v.sidecar}: ${v.ok} ok / ${v.failed} failed`).join("; ") }) : null))));
}

// ---------------------------------------------------------------- handshakes
async function selectEdge(e) {
  state.edge = e;
  document.getElementById("hs-edge").textContent = `${short(e.client)} → ${short(e.server)} (${e.path})`;
  // the proof outside this page: the packets, in Wireshark (the console holds no key)
  const wire = document.getElementById("hs-wire");
  wire.hidden = e.path !== "MTD/1";
  wire.textContent = e.keys_logged
    ? "see these bytes on the wire, decrypted in Wireshark: mtlsdemo capture --seconds 5 --out mesh.pcapng"
    : "see these bytes on the wire: mtlsdemo capture --seconds 5 --out mesh.pcapng (start the mesh with --keylog FILE to decrypt them)";
  if (e.path !== "MTD/1") {
    state.list = [];
    renderList();
    document.getElementById("ladder").replaceChildren(h("p", { class: "note", text: "native gRPC mTLS (TLS 1.3, inside grpcio): counted from the service's /metrics; its messages are not observable one by one here — try `mtlsdemo handshake --tls13 --connect` for that ladder." }));
    render();
    return;
  }
  const q = new URLSearchParams({ client: e.client, server: e.server });
  state.list = [];  // handshakes streamed in while the list loads land here first
  const fetched = (await api("/api/handshakes?" + q)).handshakes;
  if (state.edge !== e) return;  // another edge was chosen meanwhile
  const seen = new Set(fetched.map((d) => d.key));
  state.list = [...state.list.filter((d) => !seen.has(d.key)), ...fetched].slice(0, 50);
  renderList();
  if (state.list.length) showLadder(state.list[0]);
  render();
}

function onHandshake(doc) {
  const e = state.edge;
  if (!e || e.path !== "MTD/1" || doc.client !== e.client || doc.server !== e.server) return;
  state.list.unshift(doc);
  state.list = state.list.slice(0, 50);
  renderList(doc.key);
}

function renderList(fresh) {
  const ol = document.getElementById("hs-list");
  ol.replaceChildren(...state.list.map((d) => h("li", {
    class: (state.selected && state.selected.key === d.key ? "selected" : "") + (d.key === fresh ? " new" : ""),
    "data-testid": "handshake-item", "data-outcome": d.outcome, "data-resumed": d.resumed ? "true" : "false", onclick: () => showLadder(d),
  },
    h("span", { class: d.outcome === "success" ? "ok" : "bad", text: d.outcome === "success" ? (d.resumed ? "✓ resumed" : "✓ ok") : "✗ " + d.outcome }),
    ` ${time(d.at)} · seen by ${d.sidecar} (${d.role}) · ${d.duration_ms.toFixed(2)} ms`)));
}

function ladderSvg(d) {
  const client = d.client, server = d.server;
  const xs = { client: 150, server: 520 };
  const other = d.role === "client" ? "server" : "client";
  const rowH = 34, top = 64;
  const rows = d.messages.map((m) => ({ ...m, from: m.direction === "send" ? d.role : other }));
  if (d.outcome === "success" || d.kind === "session") rows.push({ name: "application data ⇄ encrypted records", step: "data", from: "both", size: null, at_ms: null });
  if (d.kind === "session") {
    // the record that failed came from the peer (we refused it) or ours was refused
    const from = d.origin === "local" ? other : d.role;
    rows.push({ name: `a record refused: ${d.outcome}`, step: "alert", from, size: null, at_ms: null });
  }
  const height = top + rows.length * rowH + 64;  // room for the total and the note below
  const svg = s("svg", { viewBox: `0 0 830 ${height}`, class: "ladder", role: "img", "data-testid": "ladder", "data-outcome": d.outcome, "aria-label": `handshake ladder, ${d.outcome}` });
  // step bands: contiguous runs of one step
  let i = 0;
  const labelled = new Set();
  while (i < rows.length) {
    let j = i;
    while (j + 1 < rows.length && rows[j + 1].step === rows[i].step) j++;
    const st = STEPS[rows[i].step] || { n: 0, text: rows[i].step };
    const first = !labelled.has(rows[i].step);
    labelled.add(rows[i].step);
    const ms = first && d.phases_ms ? d.phases_ms[rows[i].step] : undefined;
    svg.append(s("g", { "data-testid": "ladder-step", "data-step": rows[i].step },
      s("rect", { class: "band " + rows[i].step, x: 40, y: top + i * rowH - 6, width: 780, height: (j - i + 1) * rowH }),
      s("text", { class: "band-label", x: 540, y: top + i * rowH + 14, text: (st.n ? `${st.n} ` : "") + st.text + (ms !== undefined && rows[i].step !== "data" ? ` · ${ms.toFixed(2)} ms here` : "") })));
    i = j + 1;
  }
  // lanes
  // a peer refused before it was verified: say who its certificate claims to be
  const claimed = d.peer === "unknown" && d.peer_certificates.length && d.peer_certificates[0].identity;
  for (const side of ["client", "server"]) {
    const id = side === "client" ? client : server;
    const title = id === "unknown" && claimed ? `unverified (claims ${short(claimed)})` : short(id);
    svg.append(s("text", { class: "lane-title", x: xs[side], y: 20, "text-anchor": "middle", text: `${side}: ${title}` }),
      s("text", { class: "time", x: xs[side], y: 36, "text-anchor": "middle", text: id.length > 60 ? "…" + id.slice(-59) : id }),
      s("line", { class: "lane", x1: xs[side], y1: 44, x2: xs[side], y2: top + rows.length * rowH }));
  }
  // arrow weight by bytes: a 1,224-byte key share or a multi-KB ML-DSA certificate is
  // seen to be heavier than a 36-byte Finished, not only read as a number
  const biggest = Math.max(1, ...rows.map((m) => m.size || 0));
  const weight = (size) => (size ? (1.2 + 4.3 * Math.sqrt(size / biggest)).toFixed(2) : "1.5");
  rows.forEach((m, k) => {
    const y = top + k * rowH + 12;
    const alert = m.step === "alert";
    const name = NAMES[m.name] || m.name;
    const g = s("g", { class: "msg" + (alert ? " alert" : ""), "data-testid": "ladder-message", "data-name": m.name, "data-step": m.step });
    // a message opens its byte view: the in-memory panel's handshakes carry their
    // bytes; a live one's are read once from the sidecar that journaled it
    const runs = d.bytes && m.from !== "both" && bytesOf(d, rows, k);
    const live = !d.bytes && d.key && !alert && m.size;
    if (runs || live) {
      // the whole row clicks (an SVG group takes clicks only where it paints)
      g.append(s("rect", { class: "hit", x: 40, y: y - 17, width: 780, height: rowH - 2, fill: "transparent" }));
      g.classList.add("clickable");
      g.addEventListener("click", () => (runs ? showBytes(m, runs) : liveBytes(d, rows, k)));
    }
    if (m.from === "both") {
      g.append(s("line", { x1: xs.client + 8, y1: y, x2: xs.server - 8, y2: y, "marker-end": "url(#hd)", "marker-start": "url(#hd)" }));
    } else {
      const to = m.from === "client" ? "server" : "client";
      const x1 = xs[m.from], x2 = xs[to] + (to === "server" ? -6 : 6);
      g.append(s("line", { x1, y1: y, x2, y2: y, "marker-end": alert ? "url(#ha)" : "url(#hd)", style: `stroke-width: ${weight(m.size)}px`, "stroke-width": weight(m.size), "data-bytes": m.size || 0 }));
    }
    g.append(s("text", { x: (xs.client + xs.server) / 2, y: y - 5, "text-anchor": "middle", text: (alert ? "alert: " : "") + name + (m.size ? ` (${m.size} B)` : "") }));
    if (m.at_ms !== null && m.at_ms !== undefined) g.append(s("text", { class: "time", x: 44, y: y + 4, text: `+${m.at_ms.toFixed(2)} ms` }));
    svg.append(g);
  });
  svg.prepend(s("defs", {},
    s("marker", { id: "hd", viewBox: "0 0 10 10", refX: 9, refY: 5, markerUnits: "userSpaceOnUse", markerWidth: 11, markerHeight: 11, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#1f2328" })),
    s("marker", { id: "ha", viewBox: "0 0 10 10", refX: 9, refY: 5, markerUnits: "userSpaceOnUse", markerWidth: 13, markerHeight: 13, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#cf222e" }))));
  if (d.outcome !== "success") {
    // the side that raised the failure: this one (local) or the peer (remote); the ✗ sits
    // in the band of the step that failed (the alert row is only how it was told)
    const raiser = d.origin.startsWith("remote") ? other : d.role;
    let k = rows.findIndex((r) => r.step === d.step);
    if (k < 0) k = Math.max(0, rows.findIndex((r) => r.step === "alert"));
    svg.append(s("text", { class: "cross", x: xs[raiser] + (raiser === "client" ? 10 : -30), y: top + k * rowH + 20, "data-testid": "ladder-cross", "data-side": raiser, "data-step": rows[k] ? rows[k].step : "", text: "✗" }));
  }
  // the bytes this handshake put on the wire, and where steps 2 and 3 share a flight
  const total = rows.reduce((n, m) => n + (m.size || 0), 0);
  const order = rows.map((r) => r.step).filter((st, n, all) => n === 0 || st !== all[n - 1]);
  const interleaved = order.length !== new Set(order).size;
  svg.append(s("text", { class: "time", x: 44, y: height - 22, "data-testid": "ladder-total", "data-bytes": total,
    text: `this handshake: ${(total / 1024).toFixed(1)} KB on the wire in ${rows.filter((m) => m.size).length} messages (arrow weight: bytes)` }));
  if (interleaved) svg.append(s("text", { class: "time", x: 44, y: height - 8, "data-testid": "ladder-interleave",
    text: "steps 2 and 3 interleave: a side's flight carries its certificate (2) and its key share (3) together; each is checked in order" }));
  return svg;
}

// the k-th row's message as it crossed: its sender, its type, which occurrence of it
function bytesOf(d, rows, k) {
  const m = rows[k];
  const n = rows.slice(0, k).filter((r) => r.name === m.name && r.from === m.from).length;
  const hit = d.bytes.find((b) => b.sender === m.from && b.name === m.name && b.n === n);
  return hit ? hit.runs : null;
}

async function liveBytes(d, rows, k) {
  try {
    d.liveBytes = d.liveBytes || (await api("/api/handshake-bytes?key=" + encodeURIComponent(d.key))).bytes;
    const runs = bytesOf({ bytes: d.liveBytes }, rows, k);
    if (runs) showBytes(rows[k], runs);
  } catch (e) {
    const box = document.getElementById("byte-view") || h("div", { id: "byte-view", class: "byte-view", "data-testid": "byte-view" });
    box.replaceChildren(h("span", { class: "note", text: "bytes: " + e.message }));
    document.getElementById("ladder").append(box);
  }
}

function showBytes(m, runs) {
  const total = runs.reduce((t, r) => t + r[2], 0);
  const box = document.getElementById("byte-view") || h("div", { id: "byte-view", class: "byte-view", "data-testid": "byte-view" });
  box.replaceChildren(
    h("b", { text: `${NAMES[m.name] || m.name}: ${total} bytes, as the encoder joined them` }),
    h("table", { class: "runs" }, ...runs.map(([name, offset, size, hex, what]) => h("tr", { "data-testid": "byte-run", "data-name": name, "data-offset": offset, "data-size": size },
      h("td", { class: "id", text: `${offset}+${size}` }), h("td", {}, h("b", { text: name }), h("div", { class: "note", text: what })),
      h("td", {}, h("code", { text: hex.length > 96 ? hex.slice(0, 96) + `… (${size} bytes)` : hex }))))));
  box.dataset.total = total;
  box.dataset.message = m.name;
  document.getElementById("ladder").append(box);
  box.scrollIntoView({ block: "nearest" });
}

// the peer's CertificateVerify, as this side checked it: ML-DSA is a quantum-safe identity
function pqSignature(d) {
  const scheme = d.peer_signature || "";
  if (!scheme.startsWith("MLDSA")) return null;
  const peer = d.role === "client" ? d.server : d.client;
  const cert = (d.peer_certificates || [])[0];
  return h("div", { class: "pq", "data-testid": "ladder-pq-identity", text: `quantum-safe identity: ${short(peer)} signed the transcript with ${scheme} (FIPS 204)${cert ? `, its certificate ${cert.key}` : ""}; the Certificate and CertificateVerify messages above are the bigger ones` });
}

function verdict(d) {
  const st = STEPS[d.step] || { n: "?", text: d.step || "?" };
  if (d.outcome === "success" && d.resumed)
    return h("div", { class: "verdict ok", "data-testid": "ladder-verdict", "data-resumed": "true" }, `✓ ${d.suite}: resumed from a session ticket — no certificates, no signatures; both sides proved they hold the ticket's secret and re-checked identity, expiry, status and trust; fresh X25519 keys; ${d.duration_ms.toFixed(2)} ms as seen by ${d.sidecar} (${d.role}).`);
  if (d.outcome === "success")
    return h("div", { class: "verdict ok", "data-testid": "ladder-verdict" }, `✓ ${d.suite}: both sides verified each other; ${d.duration_ms.toFixed(2)} ms as seen by ${d.sidecar} (${d.role}).${d.resumption && d.resumption.startsWith("full:") ? " " + d.resumption + "." : ""}`,
      quantumSafe(d.suite) ? h("div", { class: "pq", "data-testid": "ladder-pq", text: "quantum-safe key exchange: the ServerKeyShare carries an ML-KEM-768 key (1,184 bytes) beside X25519's 32, the ClientKeyExchange a 1,088-byte ML-KEM ciphertext; the session key needs both secrets" }) : null,
      pqSignature(d));
  const sideOf = (id) => (id === d.client ? "client" : id === d.server ? "server" : "?");
  return h("div", { class: "verdict bad", "data-testid": "ladder-verdict", "data-reason": d.outcome, "data-origin": d.origin },
    h("b", { text: `✗ ${d.outcome}` }),
    d.kind === "session"
      ? ` — the handshake succeeded, then ${short(d.rejected_by)} (the ${sideOf(d.rejected_by)}) refused an encrypted record and ended the session (step 4); seen by ${d.sidecar} (${d.role}, origin ${d.origin}).`
      : ` — rejected by ${short(d.rejected_by)} (the ${sideOf(d.rejected_by)})${d.origin === "remote_unverified" ? " — its claim: the alert came in clear, before keys" : ""} in step ${st.n} ${st.text}; seen by ${d.sidecar} (${d.role}, origin ${d.origin}).`,
    d.origin === "remote_unverified" ? unverifiedNote() : null,
    d.detail ? h("div", { text: d.detail }) : null,
    (d.checks || []).length
      ? h("ul", { class: "passed", "data-testid": "ladder-passed" }, h("li", { class: "note", text: `this side's checks of the ${d.role === "client" ? "server" : "client"} that passed before ${d.origin === "local" ? "the one that failed" : "the refusal"}:` }),
        ...d.checks.map((c) => h("li", { text: "✓ " + c })))
      : null);
}

// An alert received in clear (before the session keys) is only the peer's claim:
// anyone on the path could have sent it (docs/protocol.md §6).
function unverifiedNote() {
  return h("div", { class: "unverified", "data-testid": "unverified-claim" },
    "⚠ unauthenticated claim: this alert came in clear, before the session keys, so nothing proves the peer sent it; the peer's own record (its sidecar's log or metrics, origin local) confirms it.");
}

function certFacts(c, st) {
  if (!c) return null;
  if (c.error) return h("p", { class: "note", text: c.error });
  const rows = [["identity", c.identity], ["names (SAN)", c.names.join(", ")], ["key", c.key], ["serial", c.serial],
    ["valid", `${c.not_before} .. ${c.not_after}`], ["issuer", c.issuer + (c.authority_key_id ? ` · key id ${c.authority_key_id.slice(0, 11)}…` : "")],
    ["key id", c.subject_key_id ? c.subject_key_id.slice(0, 11) + "…" : "—"], ["sha-256", c.fingerprint_sha256]];
  if (st) rows.push(["stapled status", st.status === "none" ? "none stapled" : `${st.status}${st.revoked_at ? " since " + st.revoked_at : ""} (valid ${st.this_update || "?"} .. ${st.next_update || "?"})`]);
  return h("dl", { class: "facts", "data-testid": "peer-certificate" }, rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
}

function showLadder(d, panel) {
  state.selected = d;
  const box = panel || document.getElementById("ladder");
  const phases = Object.entries(d.phases_ms || {}).map(([k, v]) => `${(STEPS[k] || { n: "" }).n} ${STEPS[k] ? STEPS[k].text : k} ${v.toFixed(2)} ms`).join(" · ");
  box.replaceChildren(
    h("div", { class: "note", text: `seen by ${d.sidecar} as the ${d.role} · ${time(d.at)} · peer address ${d.peer_address} · processing: ${phases}` }),
    ladderSvg(d), verdict(d),
    d.peer_certificates.length ? h("div", {}, h("b", { text: `certificate the ${d.role === "client" ? "server" : "client"} presented` }), certFacts(d.peer_certificates[0], d.peer_status)) : h("p", { class: "note", text: d.resumed ? "resumed: no certificate travels; the checks below say what the ticket carried and what was re-checked" : "no certificate was received before the handshake ended" }),
    ...(d.checks.length ? [h("ol", { class: "checks", "data-testid": "checks" }, d.checks.map((c) => h("li", { text: c })))] : []));
  if (!panel) renderList();
}

// ---------------------------------------------------------------- failures
function renderFailures(items) {
  const body = document.querySelector("#failures tbody");
  if (!items.length) {
    // the Break it buttons sit above this table, and only where this console may run them
    const how = !document.getElementById("break-section").hidden ? (state.breakCommand ? `the Break it buttons above: each says the command` : "the Break it buttons above, or `mtlsdemo break`") : "`mtlsdemo break` against this mesh";
    body.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "note", "data-testid": "failures-empty", text: `no failure seen — break something (${how})` })));
    return;
  }
  body.replaceChildren(...items.map((f) => h("tr", {
    class: f.handshake ? "clickable" : "", "data-testid": "failure-row", "data-reason": f.reason, "data-origin": f.origin,
    "data-rejected-by": f.rejected_by, "data-claimed": f.peer_claimed || "", onclick: () => f.handshake && showFailure(f),
  },
    h("td", { text: f.last_seen ? time(f.last_seen) : "—" }),
    h("td", { "data-testid": "failure-by" }, h("b", { text: f.rejected_by === "unknown" ? "the peer, unidentified" : short(f.rejected_by) }),
      f.origin === "remote_unverified" ? h("span", { class: "unverified", "data-testid": "unverified-mark", title: "the alert came in clear, before keys: only the peer's claim", text: " ⚠ its claim" }) : null,
      whoLine(f.rejected_by, f.peer_claimed, "it refused before its certificate arrived")),
    h("td", { "data-testid": "failure-rejected" }, h("b", { text: short(f.rejected) }), whoLine(f.rejected, f.peer_claimed, "no certificate arrived")),
    h("td", { class: "bad", text: f.reason }),
    h("td", { text: STEPS[f.step] ? `${STEPS[f.step].n} ${STEPS[f.step].text}` : f.step || "—" }),
    h("td", { text: f.path }),
    h("td", { text: f.count }),
    h("td", { class: "note", text: `${f.detail} (seen by ${f.seen_by}, origin ${f.origin})` }))));
}

async function showFailure(f) {
  // the failure's own handshake, then the others of its pair (the edge may not be
  // drawn yet: edges come from the sidecars' /status, failures from their events)
  const all = (await api("/api/handshakes?limit=500")).handshakes;
  const d = all.find((x) => x.key === f.handshake);
  if (d) openHandshake(d, all, `${short(d.client)} → ${short(d.server)} (MTD/1)`);
}

// one handshake's ladder, with the others of its client → server pair in the list
function openHandshake(d, all, heading) {
  state.edge = state.mesh.edges.find((e) => e.path === "MTD/1" && e.client === d.client && e.server === d.server)
    || { id: null, client: d.client, server: d.server, path: "MTD/1" };
  state.list = all.filter((x) => x.client === d.client && x.server === d.server).slice(0, 50);
  document.getElementById("hs-edge").textContent = heading;
  showLadder(d);
  render();
}

// ---------------------------------------------------------------- certificates
function renderCertificates(c) {
  const box = document.getElementById("timeline");
  const now = Date.now(), day = 86400e3;
  const rows = [];
  for (const ca of c.cas) rows.push({ kind: "ca", label: `CA ${ca.subject}`, from: Date.parse(ca.not_before), to: Date.parse(ca.not_after), text: `key id ${(ca.subject_key_id || "").slice(0, 11)}…` });
  for (const id of c.identities) {
    const leaf = id.chain[0];
    rows.push({ kind: "leaf", label: `${short(id.identity)} (${id.sidecar})`, from: Date.parse(leaf.not_before), to: Date.parse(leaf.not_after), text: `serial ${leaf.serial.slice(0, 12)} · ${leaf.key}` });
    const st = id.stapled_status;
    if (st && st.this_update) rows.push({ kind: "status", revoked: st.status === "revoked", label: `  stapled status: ${st.status}`, from: Date.parse(st.this_update), to: Date.parse(st.next_update), text: `next update ${time(st.next_update)}` });
  }
  const lo = Math.min(now - 3 * day, ...rows.filter((r) => r.kind !== "ca").map((r) => r.from));
  const hi = Math.max(now + 7 * day, ...rows.filter((r) => r.kind !== "ca").map((r) => r.to)) + day;
  const W = 1100, X0 = 300, X1 = 780, rowH = 24;
  const x = (t) => X0 + ((Math.min(Math.max(t, lo), hi) - lo) / (hi - lo)) * (X1 - X0);
  const svg = s("svg", { class: "tl", viewBox: `0 0 ${W} ${rows.length * rowH + 50}`, role: "img", "aria-label": "certificates on a timeline" });
  rows.forEach((r, k) => {
    const y = 30 + k * rowH;
    const expired = r.kind !== "status" && r.to < now;
    const w = Math.max(3, x(r.to) - x(r.from));
    svg.append(s("g", { "data-testid": "timeline-row", "data-kind": r.kind },
      s("text", { x: 4, y: y + 12, text: r.label.length > 46 ? r.label.slice(0, 45) + "…" : r.label }),
      s("rect", { class: `bar ${r.kind}${expired ? " expired" : ""}${r.revoked ? " revoked" : ""}`, x: x(r.from), y: y, width: w, height: 14, rx: 3 }),
      s("text", { x: X1 + 10, y: y + 12, text: (r.to > hi ? "→ " : "") + r.text + (r.kind !== "status" ? ` · ${expired ? "expired" : "ends " + new Date(r.to).toISOString().slice(0, 10)}` : "") })));
  });
  // the scale's start date sits left of the bars, so the "now" line (a few days in) never crosses it
  svg.append(s("line", { class: "now", "data-testid": "timeline-now", x1: x(now), y1: 18, x2: x(now), y2: rows.length * rowH + 36 }),
    s("text", { x: x(now) + 3, y: 14, text: `now (${new Date(now).toISOString().slice(0, 10)})` }),
    s("text", { x: X0 - 6, y: rows.length * rowH + 48, "text-anchor": "end", class: "note", "data-testid": "timeline-start", text: new Date(lo).toISOString().slice(0, 10) }),
    s("text", { x: X1, y: rows.length * rowH + 48, "text-anchor": "end", text: new Date(hi).toISOString().slice(0, 10) }));
  box.replaceChildren(svg);
  const cards = c.identities.map((id) => h("div", { class: "card", "data-testid": "identity-card", "data-identity": id.identity },
    h("h3", { text: `${short(id.identity)} — ${id.sidecar}` }),
    h("div", {}, h("span", { class: "pill", text: `rollover: ${id.rollover.stage}` }), " ", id.rollover.text),
    h("div", { text: `reload #${id.reload_generation}, loaded ${time(id.loaded_at)}` + (id.problems.length ? ` — problems: ${id.problems.join("; ")}` : "") }),
    certFacts(id.chain[0], id.stapled_status),
    h("div", { class: "note", text: "chain: " + id.chain.map((x) => `${x.subject} (key id ${(x.subject_key_id || "?").slice(0, 11)}…)`).join(" ← ") + " · trusts: " + id.trust_bundle.map((x) => `${x.subject} (${(x.subject_key_id || "").slice(0, 11)}…)`).join(", ") })));
  const crl = c.crl.map((r) => h("div", { class: "note", "data-testid": "crl", text: `${r.service}: CRL lists ${r.revoked_serials} revoked serial(s)` }));
  document.getElementById("certs").replaceChildren(h("div", { class: "cards" }, cards), ...crl);
  renderSvids(c.agent);
}

// identities from a Workload API agent: each SVID counting down to its renewal and
// its expiry (the page ticks; the agent's /status says when each was issued), and
// the rotations so far, newest first
function renderSvids(agent) {
  const box = document.getElementById("svids");
  if (!agent) return box.replaceChildren();
  const cards = Object.entries(agent.workloads).map(([name, w]) => h("div", { class: "card svid", "data-testid": "svid-card", "data-workload": name },
    h("h3", { text: `${name} — SVID from the Workload API` }),
    h("div", { class: "countdown", "data-testid": "svid-countdown", "data-not-after": w.not_after, "data-renew-at": w.renew_at, "data-issued": w.history.length ? w.history[w.history.length - 1].issued_at : "" }),
    h("div", { text: `serial ${w.serial.slice(0, 12)}… · ${w.renewals ? `rotation #${w.renewals}` : "first SVID"} · lives ${left(agent.ttl_seconds)}` + (w.failures ? ` · ${w.failures} failed renewal(s)` : "") + ((agent.trust_domains || []).length > 1 ? ` · trust domain ${w.trust_domain}, its own agent` : "") }),
    w.last_error ? h("div", { class: "bad", "data-testid": "svid-error", text: `the agent could not renew: ${w.last_error} — the SVID in hand serves until it expires` }) : null,
    h("ol", { class: "note", reversed: "", "data-testid": "svid-history" }, ...w.history.slice().reverse().slice(0, 6).map((x) => h("li", { text: `${new Date(x.issued_at * 1e3).toISOString().slice(11, 19)}Z serial ${x.serial.slice(0, 12)}… until ${new Date(x.not_after * 1e3).toISOString().slice(11, 19)}Z` })))));
  box.replaceChildren(h("h3", { text: `Workload API: SVIDs living ${left(agent.ttl_seconds)}, renewed at half-life, no restart` }), h("div", { class: "cards" }, cards));
  tickSvids();
}
function tickSvids() {
  const now = Date.now() / 1e3;
  for (const el of document.querySelectorAll("[data-testid=svid-countdown]")) {
    const end = +el.dataset.notAfter, renew = +el.dataset.renewAt, start = +el.dataset.issued || end - 1;
    const frac = Math.max(0, Math.min(1, (end - now) / (end - start)));
    el.replaceChildren(
      h("div", { class: "bar-track" }, h("div", { class: `bar-fill${end <= now ? " expired" : ""}`, style: `width:${(frac * 100).toFixed(1)}%` })),
      h("span", { text: end <= now ? "EXPIRED: new handshakes with this workload are refused (certificate_expired)" : `${left(end - now)} left · renews in ${renew > now ? left(renew - now) : "now (retrying)"}` }));
  }
}
setInterval(tickSvids, 1000);

// ---------------------------------------------------------------- try / break
async function setupForms() {
  // the options, and the mesh to start the form from (before the form fills: never
  // over a choice already made)
  const [o, m] = await Promise.all([api("/api/options"), api("/api/mesh").catch(() => null)]);
  state.options = o;
  const f = document.getElementById("try");
  const fill = (name, items) => f.elements[name].replaceChildren(...items.map(([v, t]) => h("option", { value: v, text: t })));
  fill("key_type", o.key_types.map((k) => [k, k]));
  fill("suite", o.suites.map((k) => [k, k]));
  fill("provoke", Object.entries(o.provoke).map(([k, t]) => [k, `${k}: ${t}`]));
  // start from what the mesh runs: its identities' key type, its edges' suite
  if (m) {
    const kt = m.nodes.map((n) => n.certificate && n.certificate.key_type).find(Boolean);
    if (o.key_types.includes(kt)) f.elements.key_type.value = kt;
    const suite = m.edges.filter((e) => e.path === "MTD/1").flatMap((e) => e.suites).find((x) => o.suites.includes(x));
    if (suite) f.elements.suite.value = suite;
  }
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("try-result");
    const button = f.querySelector("button");
    button.disabled = true;
    out.textContent = "running…";
    try {
      const r = await api("/api/try", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(Object.fromEntries(new FormData(f))) });
      out.replaceChildren(h("span", { text: `${r.outcome === "success" ? "✓ success" : "✗ " + r.outcome} — ${r.what}` }), captureLinks(r.capture));
      state.edge = null;
      state.list = r.handshakes.map((d) => ({ ...d, bytes: r.bytes }));  // the byte view
      document.getElementById("hs-edge").textContent = `in memory: ${r.request.key_type}, ${r.request.suite}, provoke ${r.request.provoke} (both sides' views)`;
      renderList();
      const failed = state.list.find((d) => d.origin === "local") || state.list[0];
      showLadder(failed);
      document.getElementById("handshakes-section").scrollIntoView({ block: "start" });
    } catch (e) {
      out.textContent = "error: " + e.message;
    } finally {
      button.disabled = false;
    }
  });
  if (o.break.allowed) {
    document.getElementById("break-section").hidden = false;
    document.getElementById("break-buttons").replaceChildren(...Object.entries(o.break.scenarios).map(([name, what]) =>
      h("button", { type: "button", title: what, "data-testid": "break-button", "data-scenario": name, onclick: () => runBreak(name) }, name)));
  } else if (o.break.command) {
    // This console holds no CA key (compose): each button says the command that breaks
    // this mesh from the host; the refusal it causes shows up here all the same.
    state.breakCommand = o.break.command;
    document.getElementById("break-section").hidden = false;
    document.getElementById("break-h").querySelector("small").textContent =
      "this console holds no CA key, so it cannot break the mesh itself: each button says the command that does, from the host; the refusal shows up here, in Handshakes and Failures";
    document.getElementById("break-buttons").replaceChildren(...Object.entries(o.break.scenarios).map(([name, what]) =>
      h("button", { type: "button", title: what, "data-testid": "break-button", "data-scenario": name, onclick: () => showBreakCommand(name, what) }, name)));
  }
}

function showBreakCommand(name, what) {
  const p = document.getElementById("break-elsewhere");
  p.hidden = false;
  p.dataset.scenario = name;
  p.replaceChildren(h("span", { text: `${name}: ${what}. On the host, in the clone: ` }),
    h("code", { "data-testid": "break-command", text: state.breakCommand.replace("{scenario}", name) }));
}

// the in-memory handshake as a file Wireshark opens, and its key log: these identities
// are throwaway ones, so their secrets may be handed out
function captureLinks(c) {
  if (!c) return null;
  const pcap = Uint8Array.from(atob(c.pcap_base64), (ch) => ch.charCodeAt(0));
  const link = (name, blob, testid) => h("a", { href: URL.createObjectURL(blob), download: name, "data-testid": testid, text: name });
  return h("div", { class: "note", "data-testid": "try-capture" },
    h("span", { text: "on the wire: " }),
    link(c.pcap_name, new Blob([pcap], { type: "application/vnd.tcpdump.pcap" }), "try-pcap"),
    c.keys ? h("span", { text: " + its key log " }) : null,
    c.keys ? link(c.keys_name, new Blob([c.keys], { type: "text/plain" }), "try-keys") : null,
    h("div", { class: "id", text: c.open }));
}

async function runBreak(name) {
  const buttons = document.querySelectorAll("#break-buttons button");
  buttons.forEach((b) => (b.disabled = true));
  try {
    await api("/api/break/" + encodeURIComponent(name), { method: "POST", body: "{}" });
  } catch (e) {
    onBreak({ name, state: "done", ok: false, lines: ["   !! " + e.message] });
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function onBreak(r) {
  const pre = document.getElementById("break-report");
  pre.dataset.scenario = r.name;
  pre.dataset.state = r.state;
  if (r.state === "running") { pre.className = "report"; pre.textContent = `== break ${r.name}: running…`; return; }
  pre.dataset.ok = String(r.ok);
  pre.className = "report " + (r.ok ? "ok" : "bad");
  pre.textContent = `== break ${r.name}\n${r.lines.join("\n")}\n== ${r.name}: ${r.ok ? "as described; the mesh is healthy again" : "NOT as described"}`;
  openRefusal(r).catch((e) => { pre.dataset.refusal = "error: " + e.message; });
}

// The refusal a break run caused, opened where the eye is: its failed ladder in the
// Handshakes section, the report beside it. The refusing side's own record (origin
// local) is the one shown: the other side's is only the alert it was told.
async function openRefusal(r) {
  const pre = document.getElementById("break-report");
  const since = Date.parse(r.started_at || 0);
  const all = (await api("/api/handshakes?limit=500")).handshakes;
  const failed = all.filter((d) => d.outcome !== "success" && Date.parse(d.at) >= since);
  const d = failed.find((x) => x.origin === "local") || failed[0];
  const section = document.getElementById("handshakes-section");
  section.classList.add("with-report");
  if (!d) {
    pre.dataset.refusal = "none";
    state.edge = null;
    state.list = [];
    renderList();
    document.getElementById("hs-edge").textContent = `break ${r.name}: no handshake between the sidecars failed (the report says where it was refused)`;
    document.getElementById("ladder").replaceChildren(h("p", { class: "note", text: "this scenario was refused outside the sidecars' journals (in memory, or by a native gRPC port): its report, beside, has the reason and who raised it" }));
  } else {
    pre.dataset.refusal = d.key;
    openHandshake(d, all, `break ${r.name}: ${short(d.client)} → ${short(d.server)} (MTD/1), the refused handshake`);
  }
  section.scrollIntoView({ block: "start" });
}

setupForms().catch((e) => { document.getElementById("try-result").textContent = "options unavailable: " + e.message; });
connect();
