"""Render the measured parts of docs/performance.md from a bench JSON file.

    mtlsdemo bench --json > docs/bench.json       (make perf-doc does both steps)
    python tools/perf_doc.py docs/bench.json

Every number in the doc lives between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` markers and is written here from the JSON, never by
hand; a test re-renders the committed JSON and compares.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
KT_NAMES = {"ecdsa-p256": "ECDSA P-256", "rsa-2048": "RSA-2048", "ml-dsa-65": "ML-DSA-65"}
HS_MODES = {
    "mtd_in_memory": "MTD/1 in memory (both sides, one thread)",
    "mtd_in_memory_hybrid": "MTD/1 in memory, hybrid X25519MLKEM768 (post-quantum)",
    "mtd_in_memory_rsa_oaep": "MTD/1 in memory (RSA-OAEP key transport)",
    "mtd_loopback": "MTD/1 over loopback TCP",
    "mtd_loopback_no_verify_cache": "MTD/1 over loopback, chain-verification cache off",
    "openssl_tls13_loopback": "OpenSSL TLS 1.3 mutual, Python `ssl`, loopback",
    "mtd_loopback_resumed": "MTD/1.2 resumed from a ticket, loopback",
    "openssl_tls13_resumed": "OpenSSL TLS 1.3 resumed (PSK with ECDHE), loopback",
}
UNARY_MODES = {
    "plaintext_grpc": "plaintext gRPC",
    "direct_grpc_mtls": "direct gRPC mTLS",
    "through_bare_relays": "two bare relays",
    "through_sidecars": "two sidecars",
}
UNARY_CASES = {
    "100B_sequential": "100 B, sequential",
    "100B_concurrency8": "100 B, 8 concurrent",
    "64KiB_sequential": "64 KiB, sequential",
    "64KiB_concurrency8": "64 KiB, 8 concurrent",
}


def meta(b: dict[str, Any]) -> str:
    m = b.get("meta", {})
    return (
        f"Measured {m.get('date', '?')} on {m.get('machine', '?')}, Python "
        f"{m.get('python', '?')}, cryptography {m.get('cryptography', '?')}, grpcio "
        f"{m.get('grpcio', '?')}; `--n {b['handshake']['n']}`. Source: `docs/bench.json`."
    )


def handshake(b: dict[str, Any]) -> str:
    h = b["handshake"]
    rows = ["| key type | mode | p50 ms | p99 ms | handshakes/s |", "|---|---|---:|---:|---:|"]
    for kt, figs in h["key_types"].items():
        for mode, name in HS_MODES.items():
            if mode in figs:
                f = figs[mode]
                rows.append(
                    f"| {KT_NAMES.get(kt, kt)} | {name} | {f['p50_ms']:.3f} | "
                    f"{f['p99_ms']:.3f} | {f['per_second']:.0f} |"
                )
    lines = ["\n".join(rows), ""]
    for kt, figs in h["key_types"].items():
        r = figs["ratios"]
        if "mtd_loopback_p50_vs_openssl" not in r:
            continue  # ML-DSA identities: no OpenSSL reference here (the system's has none)
        lines.append(
            f"- {KT_NAMES.get(kt, kt)}, MTD/1 over loopback ÷ OpenSSL: p50 "
            f"**{r['mtd_loopback_p50_vs_openssl']:.2f}x** with the verification cache, "
            f"**{r['mtd_loopback_no_cache_p50_vs_openssl']:.2f}x** without it (like for "
            f"like: the reference runs without session tickets), p99 "
            f"{r['mtd_loopback_p99_vs_openssl']:.2f}x, rate "
            f"{r['mtd_loopback_rate_vs_openssl']:.2f}x."
        )
        if "mtd_resumed_p50_vs_openssl_resumed" in r:
            lines.append(
                f"- {KT_NAMES.get(kt, kt)}, resumed MTD/1.2 ÷ resumed OpenSSL TLS 1.3: p50 "
                f"**{r['mtd_resumed_p50_vs_openssl_resumed']:.2f}x** (both with a fresh "
                "X25519 exchange, no certificates, no signatures)."
            )
    pq = post_quantum(h)
    if pq:
        lines += ["", pq]
    return "\n".join(lines)


def post_quantum(h: dict[str, Any]) -> str:
    """The post-quantum price, from the same run: time against classic, bytes on the wire."""
    kts = h["key_types"]
    if not any("wire_bytes" in f for f in kts.values()):
        return ""
    rows = ["| identities | suite | bytes client→server | bytes server→client | total |",
            "|---|---|---:|---:|---:|"]  # fmt: skip
    for kt, figs in kts.items():
        for suite, w in figs.get("wire_bytes", {}).items():
            rows.append(
                f"| {KT_NAMES.get(kt, kt)} | {suite} | {w['client_to_server']} | "
                f"{w['server_to_client']} | {w['total']} |"
            )
    out = [
        "Post-quantum (issue 26): bytes on the wire for one full handshake, records included:",
        "",
        "\n".join(rows),
        "",
    ]
    for kt, figs in kts.items():
        r = figs.get("ratios", {})
        if "hybrid_in_memory_p50_vs_classic" in r:
            out.append(
                f"- {KT_NAMES.get(kt, kt)}: the hybrid full handshake ÷ classic X25519, in memory: "
                f"p50 **{r['hybrid_in_memory_p50_vs_classic']:.2f}x** (moonshot: ≤ 1.2x)."
            )
        if "mldsa_hybrid_in_memory_p50_vs_ecdsa_classic" in r:
            out.append(
                f"- ML-DSA-65 identities (CA and leaves) with the hybrid ÷ ECDSA P-256 with "
                f"X25519: p50 **{r['mldsa_hybrid_in_memory_p50_vs_ecdsa_classic']:.2f}x** "
                "(certificates of ~5.5 KB, signatures of 3.3 KB; resumption skips them all)."
            )
    return "\n".join(out)


def unary(b: dict[str, Any]) -> str:
    s = b["sidecar"]
    rows = ["| case | mode | p50 ms | p99 ms | calls/s |", "|---|---|---:|---:|---:|"]
    for case, name in UNARY_CASES.items():
        for mode, label in UNARY_MODES.items():
            f = s["unary"][case][mode]
            rows.append(
                f"| {name} | {label} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} | "
                f"{f['calls_per_second']:.0f} |"
            )
    lines = ["\n".join(rows), ""]
    for case, name in UNARY_CASES.items():
        f = s["unary"][case]
        lines.append(
            f"- {name}: the sidecars add **{f['sidecar_added_p50_ms_vs_direct_mtls']:+.3f} ms** "
            f"p50 over direct gRPC mTLS (p50 ratio {f['ratio_p50_sidecars_vs_direct_mtls']:.2f}x, "
            f"rate ratio {f['ratio_rate_sidecars_vs_direct_mtls']:.2f}x); two crypto-free "
            f"relays alone add {f['bare_relays_added_p50_ms_vs_plaintext']:+.3f} ms over "
            "plaintext gRPC."
        )
    return "\n".join(lines)


def tcp(b: dict[str, Any]) -> str:
    rt = b["sidecar"]["tcp_round_trip"]
    return "\n".join(
        [
            "| path | p50 ms | p99 ms |",
            "|---|---:|---:|",
            f"| direct | {rt['direct']['p50_ms']:.3f} | {rt['direct']['p99_ms']:.3f} |",
            f"| two bare asyncio relays (Protocols, no crypto) | {rt['bare_asyncio_relay_pair']['p50_ms']:.3f} "
            f"| {rt['bare_asyncio_relay_pair']['p99_ms']:.3f} |",
            f"| two sidecars (MTD/1, AES-256-GCM) | {rt['through_sidecars']['p50_ms']:.3f} | "
            f"{rt['through_sidecars']['p99_ms']:.3f} |",
            "",
            f"Per round trip the sidecars add {rt['sidecars_added_p50_ms']:.3f} ms p50 over direct, "
            f"{rt['ratio_sidecars_vs_bare_relays_added']:.2f}x what the two bare relays add "
            f"({rt['bare_relays_added_p50_ms']:.3f} ms).",
        ]
    )


def bulk(b: dict[str, Any]) -> str:
    k = b["sidecar"]["bulk"]
    t, r = k["tunnel_MBps_spread"], k["python_ssl_tls13_MBps_spread"]
    return (
        f"{k['bytes_per_run'] >> 20} MiB per run, {t['runs']} interleaved runs, median (min–max): "
        f"tunnel **{t['median']:.0f} MB/s** ({t['min']:.0f}–{t['max']:.0f}), Python `ssl` TLS 1.3 "
        f"**{r['median']:.0f} MB/s** ({r['min']:.0f}–{r['max']:.0f}): "
        f"**{k['ratio_tunnel_vs_ssl']:.2f}x**."
        + (
            f" The two extra hops alone (two crypto-free relays, same sender and sink): "
            f"**{k['bare_relays_MBps']:.0f} MB/s** "
            f"({k['bare_relays_MBps_spread']['min']:.0f}–{k['bare_relays_MBps_spread']['max']:.0f}); "
            f"the tunnel moves **{k['ratio_tunnel_vs_bare_relays']:.2f}x** of that."
            if "bare_relays_MBps" in k
            else ""
        )
        + f"\n\nMethod (from the JSON): tunnel — "
        f"{k['method']['tunnel']}; reference — {k['method']['reference']}"
        + (f"; bare relays — {k['method']['bare_relays']}" if "bare_relays" in k["method"] else "")
        + "."
    )


def scale(b: dict[str, Any]) -> str:
    c = b["scale"]
    capped = (
        f" (asked {c['tunnels_asked']}; capped by the {c['capped_by']})" if c["capped_by"] else ""
    )
    rows = [
        f"**{c['tunnels_held']} tunnels held** through one sidecar pair{capped}, "
        f"**{c['errors']} errors**, every one carrying a byte at the end; RSS "
        f"**{c['rss_per_tunnel_kib']:.1f} KiB per tunnel** per sidecar; handshakes: "
        f"{c['handshakes']['full']} full, {c['handshakes']['resumed']} resumed."
        + (
            " CPU per tunnel set up: "
            + ", ".join(
                f"{k} sidecar **{v:.2f} ms**" for k, v in c["cpu_ms_per_tunnel_by_sidecar"].items()
            )
            + "."
            if "cpu_ms_per_tunnel_by_sidecar" in c
            else ""
        ),
        "",
        "| burst | already held | ok | p50 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, x in enumerate(c["bursts"], 1):
        rows.append(
            f"| {i} ({x['size']} connects) | {x['held_before']} | {x['ok']} | "
            f"{x['p50_ms']:.0f} | {x['p99_ms']:.0f} | {x['max_ms']:.0f} |"
        )
    first = c[f"burst_{c['burst']}_p99_ms"]
    rows += [
        "",
        f"Burst of {c['burst']} simultaneous connects to idle sidecars: p99 connect-to-first-byte "
        f"**{first:.0f} ms**; worst burst p99 "
        f"{c['worst_burst_p99_ms']:.0f} ms.",
    ]
    if "floor" in c:  # runs before the floor existed render without it
        f = c["floor"]
        p99 = f[f"burst_{c['burst']}_p99_ms"]
        cpu = ", ".join(f"{v:.2f}" for v in f["cpu_ms_per_tunnel_by_relay"].values())
        rows += [
            "",
            "The floor, in the same run: the same bursts through two bare asyncio relays "
            f"(no handshake, no crypto): first-burst p99 **{p99:.0f} ms**, CPU per tunnel {cpu} "
            "ms per relay; the sidecars' first burst is "
            # from the two p99s shown (with several runs each is a median, and the
            # median of per-run ratios in the JSON would not be their quotient)
            f"**{first / p99:.1f}x** the floor's p99.",
        ]
    rows += ["", f"Method (from the JSON): {c['method']}."]
    if "floor" in c:
        rows[-1] += f" Floor: {c['floor']['method']}."
    return "\n".join(rows)


BUILD_MODES = {
    "mtd_in_memory": "in memory",
    "mtd_loopback": "loopback",
    "mtd_loopback_no_verify_cache": "loopback, verification cache off",
    "mtd_loopback_resumed": "resumed, loopback",
}


def builds(b: dict[str, Any]) -> str:
    """The interpreted run (the rest of this page) beside the compiled one, each with
    its own references measured in its own run (`make perf-doc` runs both)."""
    c = b.get("compiled")
    if c is None:
        return "(no compiled run in docs/bench.json: `make perf-doc` makes one)"
    rows = [
        f"Interpreted runs: core {b['meta'].get('build', '?')}; compiled runs: core "
        f"{c['meta'].get('build', '?')}, "
        + (
            "alternating with them on the same machine (p50s: medians over the runs)."
            if b["meta"].get("runs", 1) > 1
            else "right after it on the same machine."
        ),
        "",
        "| key type | MTD/1 handshake | interpreted p50 ms | compiled p50 ms | compiled ÷ interpreted |",
        "|---|---|---:|---:|---:|",
    ]
    for kt, figs in b["handshake"]["key_types"].items():
        other = c["handshake"]["key_types"].get(kt, {})
        for mode, name in BUILD_MODES.items():
            if mode in figs and mode in other:
                i, k = figs[mode]["p50_ms"], other[mode]["p50_ms"]
                rows.append(f"| {KT_NAMES[kt]} | {name} | {i:.3f} | {k:.3f} | {k / i:.2f}x |")
    runs = b["meta"].get("runs", 1), c["meta"].get("runs", 1)

    def both(name: str) -> bool:
        return HEADLINES[name](b) is not None and HEADLINES[name](c) is not None

    rows += [
        "",
        f"Each figure below: the median of {runs[0]} interpreted and {runs[1]} compiled "
        "runs (min–max in brackets), each run against its own references."
        if max(runs) > 1
        else "Each figure below: one run of each build.",
        "",
    ]
    for kt in b["handshake"]["key_types"]:
        if f"cold_{kt}" in HEADLINES and both(f"cold_{kt}"):
            rows.append(
                f"- {KT_NAMES[kt]}, cold (verification cache off) ÷ OpenSSL TLS 1.3 full, p50: "
                f"interpreted {headline(b, f'cold_{kt}', '.2f', 'x')}, compiled "
                f"{headline(c, f'cold_{kt}', '.2f', 'x')} (target ≤ 0.7x)."
            )
    if both("sidecar_added_ms"):
        rows.append(
            "- 100 B sequential gRPC call, the sidecars' addition over direct gRPC mTLS, p50: "
            f"interpreted {headline(b, 'sidecar_added_ms', '.3f', ' ms', '+')}, compiled "
            f"{headline(c, 'sidecar_added_ms', '.3f', ' ms', '+')} (target ≤ 0.2 ms)."
        )
    if both("record_us"):
        rows.append(
            "- one 100 B record sealed and opened by the core, in process (no socket): "
            f"interpreted {headline(b, 'record_us', '.1f', ' µs')}, compiled "
            f"{headline(c, 'record_us', '.1f', ' µs')} — a 100 B call crosses two such records, "
            "so the core's share of the sidecars' addition is this twice."
        )
    if both("bulk_ratio"):
        rows.append(
            "- bulk through the tunnel ÷ Python `ssl`: interpreted "
            f"{headline(b, 'bulk_ratio', '.2f', 'x')}, compiled "
            f"{headline(c, 'bulk_ratio', '.2f', 'x')} (target ≥ 0.8x)."
        )
    if "scale" in b and "scale" in c:
        rows.append(
            f"- a burst of {b['scale']['burst']} simultaneous connects, p99 connect-to-first-byte: "
            f"interpreted {headline(b, 'burst_p99_ms', '.0f', ' ms')}, compiled "
            f"{headline(c, 'burst_p99_ms', '.0f', ' ms')} (target < 250 ms)"
            + (
                "; two bare relays with no crypto, the floor of any Python proxy pair: "
                f"{headline(b, 'burst_floor_p99_ms', '.0f', ' ms')} and "
                f"{headline(c, 'burst_floor_p99_ms', '.0f', ' ms')}."
                if "floor" in b["scale"] and "floor" in c["scale"]
                else "."
            )
        )
    return "\n".join(rows)


def _cold(kt: str) -> Callable[[dict[str, Any]], float | None]:
    def f(r: dict[str, Any]) -> float | None:
        figs = r.get("handshake", {}).get("key_types", {}).get(kt, {}).get("ratios", {})
        return figs.get("mtd_loopback_no_cache_p50_vs_openssl")

    return f


def _added(r: dict[str, Any]) -> float | None:
    case = r.get("sidecar", {}).get("unary", {}).get("100B_sequential")
    if not case:
        return None
    return float(case["through_sidecars"]["p50_ms"] - case["direct_grpc_mtls"]["p50_ms"])


def _burst(floor: bool) -> Callable[[dict[str, Any]], float | None]:
    def f(r: dict[str, Any]) -> float | None:
        sc = r.get("scale")
        if not sc or (floor and "floor" not in sc):
            return None
        return (sc["floor"] if floor else sc)[f"burst_{sc['burst']}_p99_ms"]

    return f


# the figures the targets are about, read from one run; with several runs
# each is shown as the median and the min–max over them
HEADLINES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "cold_ecdsa-p256": _cold("ecdsa-p256"),
    "cold_rsa-2048": _cold("rsa-2048"),
    "sidecar_added_ms": _added,
    "record_us": lambda r: r.get("sidecar", {}).get("record_path", {}).get("us_per_100B_record"),
    "bulk_ratio": lambda r: r.get("sidecar", {}).get("bulk", {}).get("ratio_tunnel_vs_ssl"),
    "burst_p99_ms": _burst(floor=False),
    "burst_floor_p99_ms": _burst(floor=True),
}


def _median(values: list[Any]) -> Any:
    """The median of one leaf over runs; lists element by element, text from the first."""
    first = values[0]
    if isinstance(first, dict):
        return {k: _median([v[k] for v in values if k in v]) for k in first}
    if isinstance(first, list):
        if all(isinstance(v, list) and len(v) == len(first) for v in values):
            return [_median(list(x)) for x in zip(*values, strict=True)]
        return first
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    m = statistics.median(values)
    return int(statistics.median_low(values)) if isinstance(first, int) else m


def median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One bench JSON from several runs of one build: every figure the median over the
    runs (so the page keeps its shape), and ``meta.headlines`` each run's headline
    figures, for the medians with min–max the builds block shows."""
    out: dict[str, Any] = _median(runs)
    out["meta"] = {
        **runs[0]["meta"],
        "runs": len(runs),
        "headlines": [{k: f(r) for k, f in HEADLINES.items()} for r in runs],
    }
    return out


def merge(interpreted: list[dict[str, Any]], compiled: list[dict[str, Any]]) -> dict[str, Any]:
    """docs/bench.json: the interpreted runs, with the compiled runs under "compiled"."""
    for r in compiled:
        if "compiled" not in r.get("meta", {}).get("build", ""):
            raise SystemExit("error: a compiled run did not run the compiled core (PYTHONPATH?)")
    return {**median_of_runs(interpreted), "compiled": median_of_runs(compiled)}


def headline(run: dict[str, Any], name: str, fmt: str, unit: str = "", sign: str = "") -> str:
    """A headline figure of one build: the median (min–max over the runs), or the one
    run's value."""
    per = [h[name] for h in run["meta"].get("headlines", []) if h.get(name) is not None]
    if not per:
        value = HEADLINES[name](run)
        return f"**{sign}{value:{fmt}}{unit}**" if value is not None else "n/a"
    mid = statistics.median(per)
    if len(per) == 1:
        return f"**{sign}{mid:{fmt}}{unit}**"
    return f"**{sign}{mid:{fmt}}{unit}** ({sign}{min(per):{fmt}}–{max(per):{fmt}}{unit})"


BLOCKS: dict[str, Callable[[dict[str, Any]], str]] = {
    "meta": meta,
    "handshake": handshake,
    "unary": unary,
    "tcp": tcp,
    "bulk": bulk,
    "scale": scale,
    "builds": builds,
}


def render(doc: str, bench: dict[str, Any]) -> str:
    for name, fn in BLOCKS.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.S)
        if not pattern.search(doc):
            raise SystemExit(
                f"error: {DOC}: no <!-- bench:{name} --> ... <!-- /bench:{name} --> block"
            )
        doc = pattern.sub(lambda m, fn=fn: m.group(1) + fn(bench) + "\n" + m.group(2), doc)
    return doc


def main(argv: list[str]) -> int:
    if argv[:1] == ["--merge"] and "--compiled" in argv and len(argv) >= 5:
        # --merge OUT.json INTERPRETED.json... --compiled COMPILED.json...
        cut = argv.index("--compiled")
        interpreted, compiled = argv[2:cut], argv[cut + 1 :]
        if not interpreted or not compiled:
            print("error: --merge needs at least one run of each build", file=sys.stderr)
            return 2
        load = [[json.loads(Path(p).read_text()) for p in ps] for ps in (interpreted, compiled)]
        Path(argv[1]).write_text(json.dumps(merge(*load), indent=2) + "\n")
        return 0
    if len(argv) != 1:
        print(
            "usage: perf_doc.py BENCH.json | --merge OUT.json INTERPRETED.json... "
            "--compiled COMPILED.json...",
            file=sys.stderr,
        )
        return 2
    try:
        bench = json.loads(Path(argv[0]).read_text())
    except (OSError, ValueError) as e:
        print(f"error: {argv[0]}: not a bench JSON file ({e})", file=sys.stderr)
        return 2
    DOC.write_text(render(DOC.read_text(), bench))
    print(f"rendered {DOC.relative_to(ROOT)} from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
