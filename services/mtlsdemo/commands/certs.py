"""`mtlsdemo certs`: bootstrap, revoke, refresh-status, rotate-ca, inspect, csr, sign."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from mtlsdemo.commands import flags
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.keys import DEFAULT_KEY_TYPE, KEY_TYPES


def _ca_state_flags(p: argparse.ArgumentParser) -> None:
    """Where the CA and the identities live, and which identities: every command
    that reads or changes the CA's state takes the same flags."""
    flags.add(p, "--out", default="certs", help="output directory")
    flags.add_namespace(p, "Kubernetes namespace in IDs and DNS names")
    flags.add(
        p,
        "--service",
        multiple=True,
        default=["gateway", "ledger", "cli"],
        help="a service identity (repeat)",
        metavar="NAME",
    )
    flags.add(
        p,
        "--status-window",
        default="1h",
        help="how long a stapled status and the CRL stay valid (nextUpdate - thisUpdate)",
    )
    flags.add(
        p,
        "--sink",
        default="files",
        choices=["files", "kubernetes"],
        help="files under --out, or Kubernetes Secrets mtlsdemo-ca, mtlsdemo-crl and "
        "mtlsdemo-<service>-tls in --secret-namespace",
    )
    flags.add(
        p,
        "--secret-namespace",
        default=None,
        help="namespace for --sink kubernetes (default: --namespace)",
    )


def _issuing_flags(p: argparse.ArgumentParser) -> None:
    flags.add_trust_domain(p)
    flags.add(
        p,
        "--key-type",
        default=None,
        help=f"leaf key type: {', '.join(KEY_TYPES)} (default: keep each leaf's, unless its CA "
        "is of the other family, classic or ML-DSA; a first leaf: ml-dsa-65 under an ML-DSA CA, "
        f"else {DEFAULT_KEY_TYPE})",
    )
    flags.add(
        p,
        "--ca-key-type",
        default=None,
        help="a new CA's key type: ecdsa-p256, rsa-2048, rsa-3072, ml-dsa-44, ml-dsa-65 "
        "(default: ml-dsa-65 for ml-dsa leaves, ecdsa-p256 for others; a rollover without "
        "--key-type keeps the current CA's)",
    )
    flags.add(
        p,
        "--ca-name",
        default=None,
        help="a new CA's common name (default: mtlsdemo root CA (<trust domain>)), "
        'e.g. "impostor root CA" for a foreign-CA lesson',
    )
    flags.add(p, "--days", type=float, default=30.0, help="leaf validity in days")
    flags.add(p, "--ca-days", type=float, default=3650.0, help="CA validity in days")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser("certs", help="cert-bootstrap: CA, leaves, CSRs, inspection")
    certs.set_defaults(handler=main)
    csub = certs.add_subparsers(dest="certs_cmd", required=True)

    b = csub.add_parser("bootstrap", help="create/reuse the root CA and issue one leaf per service")
    _ca_state_flags(b)
    _issuing_flags(b)
    flags.add(
        b, "--renew-before", default="10d", help="re-issue leaves expiring within this (30d, 12h)"
    )
    flags.add(b, "--force", boolean=True, default=False, help="re-issue every leaf")
    flags.add(
        b,
        "--ca-renew-before",
        default="30d",
        help="refuse to keep issuing under a CA expiring within this (rotate it instead)",
    )
    flags.add(
        b,
        "--rotate-ca",
        boolean=True,
        default=False,
        help="when the CA is (nearly) expired, rotate it (prepare + switch) instead of refusing",
    )

    r = csub.add_parser("revoke", help="revoke a service's certificate (or --serial): CRL + status")
    _ca_state_flags(r)
    r.add_argument("target", nargs="?", default=None, metavar="SERVICE", help="whose leaf")
    flags.add(r, "--serial", default=None, help="revoke any serial the CA issued (hex)")
    flags.add(
        r,
        "--reason",
        default="unspecified",
        # checked by certs revoke itself (one line naming them all): importing the
        # list here would load the OCSP machinery for every command's start-up
        help="RFC 5280 reason: unspecified, key_compromise, ca_compromise, superseded, "
        "cessation_of_operation, affiliation_changed, certificate_hold, …",
    )

    f = csub.add_parser(
        "refresh-status", help="re-sign every identity's stapled status (tls.ocsp) and the CRL"
    )
    _ca_state_flags(f)
    flags.add(
        f,
        "--every",
        default=None,
        help="keep running: refresh again after this long (15m), until SIGTERM",
    )

    o = csub.add_parser(
        "rotate-ca", help="CA rollover in stages: plan, prepare, switch, finish (zero downtime)"
    )
    o.add_argument("stage", choices=["plan", "prepare", "switch", "finish"])
    _ca_state_flags(o)
    _issuing_flags(o)

    i = csub.add_parser("inspect", help="describe a certificate and check its chain")
    i.add_argument("path", help="PEM certificate (or chain)")
    flags.add(i, "--ca", default=None, help="CA bundle to verify the chain against")

    c = csub.add_parser("csr", help="make a key and a CSR for a service (the key never leaves)")
    flags.add(c, "--service", help="service name (required)")
    flags.add_namespace(c)
    flags.add_trust_domain(c)
    flags.add(c, "--key-type", default=DEFAULT_KEY_TYPE, help=f"key type: {', '.join(KEY_TYPES)}")
    flags.add(c, "--key-out", default=None, help="private key path (default OUT-DIR/tls.key)")
    flags.add(c, "--csr-out", default=None, help="CSR path (default OUT-DIR/tls.csr)")
    flags.add(c, "--out-dir", default=".", help="directory for the defaults above")

    s = csub.add_parser("sign", help="sign a CSR (from `certs csr` or `openssl req`) with the CA")
    s.add_argument("csr", help="CSR file (PEM or DER)")
    flags.add(s, "--ca-dir", default="certs/ca", help="directory with ca.crt and ca.key")
    flags.add(s, "--out", default=None, help="certificate output (default: CSR path with .crt)")
    flags.add(s, "--service", default=None, help="identity to issue (default: the CSR's CN)")
    flags.add_namespace(s)
    flags.add_trust_domain(s)
    flags.add(s, "--days", type=float, default=30.0, help="validity in days")


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.pki.csr import make_csr, sign_request
    from mtlsdemo.pki.identity import ServiceIdentity
    from mtlsdemo.pki.inspect import describe

    now = dt.datetime.now(dt.UTC)
    if args.certs_cmd in ("bootstrap", "revoke", "refresh-status", "rotate-ca"):
        return _certs_lifecycle(args, now)
    if args.certs_cmd == "inspect":
        text = describe(Path(args.path), Path(args.ca) if args.ca else None, now)
        print(text)
        if "FAILED:" in text:  # the check asked for failed: exit 1, as a failed handshake does
            return 1
    elif args.certs_cmd == "csr":
        if not args.service:
            raise PkiError("--service: required")
        ident = ServiceIdentity.checked(args.service, args.namespace, args.trust_domain)
        out = Path(args.out_dir)
        key = Path(args.key_out) if args.key_out else out / "tls.key"
        csr = Path(args.csr_out) if args.csr_out else out / "tls.csr"
        make_csr(ident, args.key_type, key, csr)
        print(f"wrote {key} (mode 0600) and {csr} for {ident.spiffe_id}")
    elif args.certs_cmd == "sign":
        csr_path = Path(args.csr)
        out = Path(args.out) if args.out else csr_path.with_suffix(".crt")
        if out.is_dir():  # --out (MTLSDEMO_OUT) naming a directory: the file goes inside
            out = out / csr_path.with_suffix(".crt").name
        ident = sign_request(
            csr_path,
            Path(args.ca_dir),
            out,
            args.service,
            args.namespace,
            args.trust_domain,
            args.days,
            now,
        )
        print(
            f"wrote {out} for {ident.spiffe_id} and {out.with_suffix('.ocsp')} "
            "(its CA-signed status to staple, valid 1h)"
        )
    return 0


def _certs_lifecycle(args: argparse.Namespace, now: dt.datetime) -> int:
    """bootstrap, revoke, refresh-status, rotate-ca: flags to typed values, then pki."""
    from mtlsdemo.pki import bootstrap as bs
    from mtlsdemo.pki import lifecycle
    from mtlsdemo.pki.durations import parse_duration
    from mtlsdemo.pki.stores import FileStore, SecretStore

    out = Path(args.out)
    store = (
        SecretStore.connect(args.secret_namespace or args.namespace)
        if args.sink == "kubernetes"
        else FileStore(out)
    )
    window = parse_duration(args.status_window, "--status-window")
    from mtlsdemo.trust.status import MAX_STATUS_WINDOW

    if window > MAX_STATUS_WINDOW:
        raise PkiError(
            f"--status-window {args.status_window}: longer than {MAX_STATUS_WINDOW.days} days, "
            "which every peer refuses (a status that long would outlive any revocation)"
        )
    services = tuple(args.service)
    cmd = args.certs_cmd
    if cmd == "revoke":
        changes = lifecycle.revoke(
            store,
            services,
            now,
            service=args.target,
            serial=args.serial,
            reason=args.reason,
            window=window,
        )
    elif cmd == "refresh-status" and args.every:
        return _refresh_forever(
            lambda: lifecycle.refresh_status(store, services, dt.datetime.now(dt.UTC), window),
            parse_duration(args.every, "--every"),
            window,
        )
    elif cmd == "refresh-status":
        changes = lifecycle.refresh_status(store, services, now, window)
    elif cmd == "rotate-ca" and args.stage == "plan":
        print(lifecycle.rollover_plan(store))
        return 0
    else:
        req = bs.BootstrapRequest(
            out=out,
            services=services,
            trust_domain=args.trust_domain,
            namespace=args.namespace,
            key_type=args.key_type,
            ca_key_type=args.ca_key_type,
            ca_name=args.ca_name,
            leaf_days=args.days,
            ca_days=args.ca_days,
            status_window=window,
        )
        if cmd == "rotate-ca":
            changes = lifecycle.rotate_ca(req, args.stage, store, now)
        else:
            req = dataclasses.replace(
                req,
                renew_before=parse_duration(args.renew_before, "--renew-before"),
                force=args.force,
                ca_renew_before=parse_duration(args.ca_renew_before, "--ca-renew-before"),
                rotate_ca=args.rotate_ca,
            )
            changes = bs.bootstrap(req, now, store)
    for c in changes:
        print(c)
    if cmd == "bootstrap" and all(c.action in ("reused", "unchanged") for c in changes):
        print("nothing to do: every certificate is current")
    return 0


def _refresh_forever(refresh: Any, every: dt.timedelta, window: dt.timedelta) -> int:
    """The compose loop: refresh, then wait ``every``; SIGTERM ends it cleanly."""
    import signal
    import threading

    from mtlsdemo.pki.durations import human

    if every >= window:
        raise PkiError(
            f"--every {human(every)}: must be shorter than --status-window {human(window)} "
            "(statuses would expire between two refreshes)"
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        try:
            for c in refresh():
                print(c, flush=True)
        except PkiError as e:  # keep trying: the next run may find the files back
            print(f"error: {e}", file=sys.stderr, flush=True)
        stop.wait(every.total_seconds())
    return 0
