"""A stand-in for the Kubernetes API server, as much of it as the cert-bootstrap's
Secret sink uses: get, create and replace Secrets, with ServiceAccount bearer
tokens, the rendered Roles and RoleBindings enforced, and resourceVersion
conflicts (409) — so the Job runs as rendered, with the official client and its
in-cluster config, and a missing RBAC verb fails it here as it would on a cluster.
And the targets Prometheus's pod discovery would find in the pods (the pod runner
writes each pod as the API would show it), as HTTP SD: Debian's Prometheus, which
stands in for the public image, is built without Kubernetes discovery.

Runs inside the project image (aiohttp and cryptography are there). It makes its
own serving certificate for the IP it got, writes the CA beside its state, and
keeps every Secret as one JSON file (written atomically) that the pod runner reads
to project Secret volumes.

    python3 apiserver_standin.py /state      (reads /state/config.json)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import sys
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

STATE = Path(sys.argv[1])
CONFIG = json.loads((STATE / "config.json").read_text())
PORT = int(CONFIG.get("port", 6443))


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def serving_cert(ip: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver (stand-in)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address(ip)),
                    x509.DNSName("kubernetes.default.svc"),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


def allowed(sa: str, verb: str, name: str | None, resource: str = "secrets") -> bool:
    for rule in CONFIG["rules"].get(sa, []):
        if "" not in rule.get("apiGroups", []) or resource not in rule.get("resources", []):
            continue
        if verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames")
        if not names or (name is not None and name in names):
            return True
    return False


def secret_path(ns: str, name: str) -> Path:
    return STATE / "secrets" / ns / f"{name}.json"


def next_version() -> str:
    counter = STATE / "resource-version"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    write_atomic(counter, str(n).encode())
    return str(n)


async def handle(request: web.Request) -> web.Response:
    sa = caller(request)
    if sa is None:
        return status(401, "Unauthorized", "no valid bearer token")
    ns, name = request.match_info["ns"], request.match_info.get("name")
    verb = {"GET": "get", "POST": "create", "PUT": "update"}.get(request.method)
    if verb is None:
        return status(405, "MethodNotAllowed", f"{request.method} is not in this stand-in")
    if sa.split("/")[0] != ns or not allowed(sa, verb, name):
        who = "system:serviceaccount:" + sa.replace("/", ":")
        return status(
            403,
            "Forbidden",
            f'secrets "{name or ""}" is forbidden: User "{who}" cannot {verb} '
            f'resource "secrets" in API group "" in the namespace "{ns}"',
        )
    if verb == "get":
        path = secret_path(ns, name)
        if not path.exists():
            return status(404, "NotFound", f'secrets "{name}" not found')
        return web.json_response(json.loads(path.read_text()))
    body = await request.json()
    meta = body.setdefault("metadata", {})
    name = name or meta.get("name")
    path = secret_path(ns, name)
    if verb == "create":
        if path.exists():
            return status(409, "AlreadyExists", f'secrets "{name}" already exists')
    else:
        if not path.exists():
            return status(404, "NotFound", f'secrets "{name}" not found')
        current = json.loads(path.read_text())["metadata"]["resourceVersion"]
        if meta.get("resourceVersion") not in (None, current):
            return status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on secrets "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
    meta.update(name=name, namespace=ns, resourceVersion=next_version())
    body.setdefault("kind", "Secret")
    body.setdefault("apiVersion", "v1")
    write_atomic(path, json.dumps(body).encode())
    return web.json_response(body, status=201 if verb == "create" else 200)


def caller(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return CONFIG["tokens"].get(token.strip()) if scheme.lower() == "bearer" else None


def pods(ns: str) -> list[dict]:
    """Every pod the runner wrote, tombstones included, oldest change first."""
    out = []
    for path in (STATE / "pods" / ns).glob("*.json"):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced: the next look sees it
    return sorted(out, key=lambda p: int(p["metadata"]["resourceVersion"]))


def meta_name(text: str) -> str:
    """A Kubernetes label or annotation name as Prometheus's discovery writes it."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)


def pod_role_targets(pod: dict) -> list[dict]:
    """What Prometheus's kubernetes_sd_configs `role: pod` finds for one pod (its
    documented __meta_kubernetes_* labels): a target per declared container port,
    init containers (native sidecars) included, one without a port per container
    that declares none."""
    meta, spec, st = pod["metadata"], pod["spec"], pod["status"]
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st["conditions"])
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_ip": st["podIP"],
        "__meta_kubernetes_pod_uid": meta["uid"],
        "__meta_kubernetes_pod_ready": str(ready).lower(),
        "__meta_kubernetes_pod_phase": st["phase"],
        "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
        "__meta_kubernetes_pod_host_ip": st.get("hostIP", ""),
    }
    for kind, items in (("label", meta.get("labels")), ("annotation", meta.get("annotations"))):
        for k, v in (items or {}).items():
            labels[f"__meta_kubernetes_pod_{kind}_{meta_name(k)}"] = v
            labels[f"__meta_kubernetes_pod_{kind}present_{meta_name(k)}"] = "true"
    groups = []
    for init, containers in ((True, spec.get("initContainers")), (False, spec["containers"])):
        for c in containers or []:
            base = {
                **labels,
                "__meta_kubernetes_pod_container_name": c["name"],
                "__meta_kubernetes_pod_container_image": c["image"],
                "__meta_kubernetes_pod_container_init": str(init).lower(),
            }
            for port in c.get("ports") or [None]:
                group = dict(base)
                target = st["podIP"]
                if port is not None:
                    target = f"{st['podIP']}:{port['containerPort']}"
                    group["__meta_kubernetes_pod_container_port_name"] = port.get("name", "")
                    group["__meta_kubernetes_pod_container_port_number"] = str(
                        port["containerPort"]
                    )
                    group["__meta_kubernetes_pod_container_port_protocol"] = port.get(
                        "protocol", "TCP"
                    )
                groups.append({"targets": [target], "labels": group})
    return groups


async def handle_pod_sd(request: web.Request) -> web.Response:
    """Prometheus's pod discovery, for a Prometheus built without it (Debian's): the
    same targets and labels as `role: pod`, through HTTP SD, for a caller whose
    Role may list pods."""
    sa = caller(request)
    if sa is None:
        return status(401, "Unauthorized", "no valid bearer token")
    ns = request.match_info["ns"]
    if sa.split("/")[0] != ns or not allowed(sa, "list", None, "pods"):
        return status(403, "Forbidden", f'{sa} cannot list resource "pods" in "{ns}"')
    live = [p for p in pods(ns) if not p["deleted"] and p["status"].get("podIP")]
    return web.json_response([g for p in live for g in pod_role_targets(p)])


def main() -> None:
    ip = socket.gethostbyname(socket.gethostname())
    cert, key = serving_cert(ip)
    (STATE / "tls").mkdir(exist_ok=True)
    (STATE / "tls" / "tls.crt").write_bytes(cert)
    (STATE / "tls" / "tls.key").write_bytes(key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(STATE / "tls" / "tls.crt", STATE / "tls" / "tls.key")
    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/{ns}/secrets", handle)
    app.router.add_route("*", "/api/v1/namespaces/{ns}/secrets/{name}", handle)
    app.router.add_get("/prometheus-sd/namespaces/{ns}/pods", handle_pod_sd)
    write_atomic(STATE / "ready", ip.encode())  # the runner waits for this: CA and IP
    web.run_app(app, host="0.0.0.0", port=PORT, ssl_context=ctx, print=None)


if __name__ == "__main__":
    main()
