"""The rendered manifests run as pods on Docker, with the kubelet's rules.

Every fact comes from the rendered objects (what `kubectl apply` would send); none
from a second description of the pods. What is emulated, and how:

- a pod is one network namespace: a pause-like container (the project image,
  sleeping: no registry holds registry.k8s.io/pause here) that the pod's
  containers join; init containers run in order; native sidecars (init containers
  with ``restartPolicy: Always``) start first and gate what follows on their
  ``startupProbe``; then the containers; readiness and liveness probes (exec,
  httpGet, tcpSocket, grpc) as declared, with their periods, timeouts and
  thresholds; a failed liveness probe or an exited container is restarted
  (``restartPolicy``), and restarts are counted; a Job's container that exited
  (``OnFailure``) waits out the kubelet's back-off first (10 s, doubling, at most
  5 minutes: ``CrashLoopBackOff``);
- ``securityContext``, pod and container level merged: runAsUser/runAsGroup,
  runAsNonRoot (an image USER that is a name cannot be verified: refused), fsGroup and supplementalGroups as supplementary groups,
  readOnlyRootFilesystem, capabilities, allowPrivilegeEscalation
  (no-new-privileges), seccomp (RuntimeDefault is Docker's default profile);
  ``resources.limits`` as cgroup limits (memory with no swap: the kubelet's NoSwap);
- volumes with the kubelet's layout and ownership (``AtomicWriter`` and
  ``SetVolumeOwnership``; the ServiceAccount token 0600 with an fsGroup or a
  runAsUser common to every container, owned by that user): Secret, ConfigMap, projected (of Secrets and
  ConfigMaps) and the ServiceAccount token as
  ``..data -> ..<timestamp>/`` with one symlink per key, files root:root with
  ``defaultMode``/``items[].mode``; when the pod has an fsGroup their group
  becomes it and read bits for the group are added; without one nothing is
  changed. A Secret volume waits for its Secret (ContainerCreating) unless
  ``optional``; updates are swapped in through ``..data`` while the pod runs.
  ``emptyDir`` is 0777 (setgid + fsGroup when set); a PVC is a directory kept
  across pod restarts, 0777 root:root as kind's local-path provisioner makes it;
- env: ``value``, ``valueFrom`` (fieldRef, secretKeyRef, configMapKeyRef),
  ``$(VAR)`` expanded with the kubelet's rules (earlier variables only, ``$$``
  escapes, unknown references kept), the service links and
  ``KUBERNETES_SERVICE_HOST``/``PORT``;
- images exactly as rendered: only images loaded into the "node" (what
  ``kind load`` put there) exist; any other fails the pod as ImagePullBackOff;
- Services: a ClusterIP Service is a small forwarder container holding the DNS
  names ``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``, sending
  ``port`` to a ready endpoint's ``targetPort`` (a named one resolved from the
  pods' regular containers only, as the EndpointSlice controller does); a
  headless Service's names are aliases of every selected pod;
- the API server is a stand-in (apiserver_standin.py): Secrets (get, create,
  update), and the targets Prometheus's pod discovery finds (as HTTP SD, for a
  Role that may list pods), with the ServiceAccount token and CA mounted where the
  in-cluster config reads them, and the rendered Roles enforced;
- a volume mounted inside a Secret, ConfigMap or projected volume gets its
  mountpoint made in that volume (the kubelet's nested mountpoints).

Not emulated: NetworkPolicy (no CNI: deploy/k8s/verify-on-cluster.sh checks it on
a cluster), scheduling and node resources, the kubelet's sync delay for Secret
updates (here about a second; a cluster takes up to a minute or two), headless
DNS dropping not-ready pods (every selected pod resolves), image pulls.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import grpc
import yaml
from docker.errors import APIError, NotFound
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mtlsdemo.waiting import wait_until

HERE = Path(__file__).resolve().parent
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
APISERVER_PORT = 6443
# the kubelet ignores an image's Docker HEALTHCHECK (it runs the pod's probes): so
# does the runner, which also spares the machine a probe process per container
NO_HEALTHCHECK = {"test": ["NONE"]}
SECRET_SYNC_SECONDS = 1.0  # the kubelet's is about a minute: the swap, not the delay, is tested
# the kubelet's restart back-off for a container that exited: 10 s, doubled per
# restart, at most 5 minutes (a Job with restartPolicy OnFailure included)
CRASH_BACKOFF_SECONDS, CRASH_BACKOFF_MAX = 10.0, 300.0


class PodFailed(Exception):
    """A pod (or Job) ended the way `kubectl get pods` would show it: reason + detail."""

    def __init__(self, pod: str, reason: str, detail: str) -> None:
        super().__init__(f"pod {pod}: {reason}: {detail}")
        self.pod, self.reason, self.detail = pod, reason, detail


def load_rendered(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def find(objects: Iterable[dict], kind: str, name: str) -> dict:
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise KeyError(f"no {kind}/{name} in the rendered objects")


# ---- the kubelet's rules, as pure functions (unit-testable) ---------------------


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion): $$ is a
    literal $, $(NAME) is NAME's value if defined, else kept as written."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end == -1:
                    out.append(text[i:])
                    break
                name = text[i + 2 : end]
                out.append(env[name] if name in env else text[i : end + 1])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def token_owner(pod_spec: dict) -> int | None:
    """pkg/volume/projected with volumeutil.FsUserFrom: when every container runs as
    the same runAsUser, the ServiceAccount token is owned by that user; with such an
    owner or an fsGroup it is written 0600 (the fsGroup then adds its group's read),
    else 0644 root. None: no common runAsUser."""
    users = {
        merged_security(pod_spec, c).get("runAsUser")
        for c in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]
    }
    (user,) = users if len(users) == 1 else (None,)
    return user if isinstance(user, int) else None


def non_root_refusal(sc: dict, image_user: str) -> str | None:
    """The kubelet's verifyRunAsNonRoot: why a container may not start under
    ``runAsNonRoot`` (None: it may). A runAsUser decides; else the image's USER,
    which must be a number to be checked: a name cannot be verified non-root."""
    if not sc.get("runAsNonRoot"):
        return None
    if "runAsUser" in sc:
        return "container's runAsUser breaks non-root policy" if sc["runAsUser"] == 0 else None
    uid = image_user.split(":")[0]
    if uid and not uid.isdigit():
        return (
            f"container has runAsNonRoot and image has non-numeric user ({uid}), "
            "cannot verify user is non-root"
        )
    if not uid or int(uid) == 0:
        return "container has runAsNonRoot and image will run as root"
    return None


def normalize_image(ref: str) -> str:
    """docker.io/library/NAME:TAG, the name containerd looks up on the node."""
    name, digest = (ref.split("@", 1) + [""])[:2]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return name + (f"@{digest}" if digest else "")


def parse_quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


def parse_quantity_cpus(q: str) -> float:
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def merged_security(pod_spec: dict, container: dict) -> dict:
    """The container's effective securityContext: container fields win over the pod's."""
    pod_sc = pod_spec.get("securityContext") or {}
    c_sc = container.get("securityContext") or {}
    keys = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
    return {**{k: pod_sc[k] for k in keys if k in pod_sc}, **c_sc}


@dataclass
class ProjectedFile:
    path: str  # relative to the volume
    data: bytes
    mode: int


def atomic_write_volume(
    root: Path, files: list[ProjectedFile], fs_group: int | None, read_only: bool = True
) -> None:
    """The kubelet's AtomicWriter, then SetVolumeOwnership: a new ..<timestamp>
    directory (0755), files with their mode, a ..data symlink swapped atomically,
    one top-level symlink per key; group = fsGroup (plus r/rw for the group)
    only when the pod sets one."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + uuid.uuid4().hex[:9]
    ts = root / stamp
    ts.mkdir()
    os.chmod(ts, 0o755)
    for f in files:
        p = ts / f.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f.data)
        os.chmod(p, f.mode)
    old = os.readlink(root / "..data") if (root / "..data").is_symlink() else None
    tmp_link = root / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.rename(tmp_link, root / "..data")
    for top in {f.path.split("/", 1)[0] for f in files}:
        link = root / top
        if not link.is_symlink():
            os.symlink(f"..data/{top}", link)
    if old:
        shutil.rmtree(root / old, ignore_errors=True)
    os.chmod(root, 0o777)  # the volume's root (a tmpfs wrapped as an emptyDir)
    if fs_group is not None:
        set_volume_ownership(root, fs_group, read_only)


def set_volume_ownership(root: Path, fs_group: int, read_only: bool) -> None:
    """pkg/volume/volume_linux.go: chown -1:fsGroup, chmod mode|0440 (ro) or 0660
    (rw); directories also get setgid and group execute."""
    mask = 0o440 if read_only else 0o660
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, None]:
            p = Path(dirpath) if name is None else Path(dirpath) / name
            os.lchown(p, -1, fs_group)
            if p.is_symlink():
                continue
            st = p.stat()
            extra = mask | (0o2110 if p.is_dir() else 0)
            os.chmod(p, (st.st_mode & 0o7777) | extra)


def selects(selector: dict | None, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---- the cluster -----------------------------------------------------------------


@dataclass
class ContainerState:
    name: str
    spec: dict
    docker_id: str | None = None
    restarts: int = 0
    ready: bool = False
    started: bool = False  # startupProbe passed (or none)
    kind: str = "main"  # "init" (runs to completion), "sidecar" (native), "main"
    waiting: str | None = None  # state.waiting.reason, e.g. CrashLoopBackOff
    restart_at: float = 0.0  # monotonic: when the back-off lets it start again

    @property
    def sidecar(self) -> bool:
        return self.kind == "sidecar"

    def back_off(self) -> None:
        """Exited: restarted only once the back-off has passed (CrashLoopBackOff)."""
        delay = min(CRASH_BACKOFF_SECONDS * 2**self.restarts, CRASH_BACKOFF_MAX)
        self.waiting, self.restart_at = "CrashLoopBackOff", time.monotonic() + delay


@dataclass
class Pod:
    cluster: Cluster
    name: str
    namespace: str
    spec: dict
    labels: dict
    annotations: dict
    hostname: str | None = None
    subdomain: str | None = None
    claims: dict[str, str] = field(default_factory=dict)  # volume name -> PVC name
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    ip: str = ""
    pause_id: str | None = None
    phase: str = "Pending"
    reason: str = ""
    containers: dict[str, ContainerState] = field(default_factory=dict)
    volumes: dict[str, Path] = field(default_factory=dict)
    projected: dict[str, list[Source]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _prober: threading.Thread | None = None

    # -- facts from the spec
    @property
    def fs_group(self) -> int | None:
        return (self.spec.get("securityContext") or {}).get("fsGroup")

    def ready(self) -> bool:
        running = [c for c in self.containers.values() if c.kind != "init"]
        return self.phase == "Running" and bool(running) and all(c.ready for c in running)

    def container_port(self, container: dict, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise PodFailed(self.name, "InvalidProbe", f"{container['name']} has no port named {port}")

    def field_value(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": "mtlsdemo-control-plane",
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "status.podIP": self.ip,
            "status.podIPs": self.ip,
            "status.hostIP": self.cluster.node_ip,
        }
        if path in simple:
            return simple[path]
        for prefix, source in (
            ("metadata.labels", self.labels),
            ("metadata.annotations", self.annotations),
        ):
            if path.startswith(prefix + "['"):
                return source.get(path[len(prefix) + 2 : -2], "")
        raise PodFailed(self.name, "CreateContainerConfigError", f"unsupported fieldRef {path}")

    def env_for(self, c: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.spec.get("enableServiceLinks", True):
            env.update(self.cluster.service_links(self.namespace))
        env["KUBERNETES_SERVICE_HOST"] = self.cluster.apiserver_ip
        env["KUBERNETES_SERVICE_PORT"] = str(APISERVER_PORT)
        for src in c.get("envFrom") or []:
            ref = src.get("configMapRef") or src.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in src else "Secret"
            data = self.cluster.data_of(kind, self.namespace, ref["name"])
            if data is None and not ref.get("optional"):
                raise PodFailed(
                    self.name,
                    "CreateContainerConfigError",
                    f'{kind.lower()} "{ref["name"]}" not found',
                )
            for k, v in (data or {}).items():
                env[src.get("prefix", "") + k] = v.decode()
        for e in c.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = expand(e.get("value", ""), env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = self.field_value(vf["fieldRef"]["fieldPath"])
                continue
            kind, ref = (
                ("Secret", vf["secretKeyRef"])
                if "secretKeyRef" in vf
                else ("ConfigMap", vf["configMapKeyRef"])
            )
            data = self.cluster.data_of(kind, self.namespace, ref["name"]) or {}
            if ref["key"] in data:
                env[e["name"]] = data[ref["key"]].decode()
            elif not ref.get("optional"):
                raise PodFailed(
                    self.name,
                    "CreateContainerConfigError",
                    f"couldn't find key {ref['key']} in {kind} {self.namespace}/{ref['name']}",
                )
        return env

    # -- volumes
    def make_volumes(self, timeout: float) -> None:
        fs_group = self.fs_group
        base = self.cluster.workdir / "pods" / self.name
        for vol in self.spec.get("volumes") or []:
            name = vol["name"]
            path = base / "volumes" / name
            if "emptyDir" in vol:
                path.mkdir(parents=True, exist_ok=True)
                os.chmod(path, 0o777)
                if fs_group is not None:
                    set_volume_ownership(path, fs_group, read_only=False)
            elif (sources := volume_sources(vol)) is not None:
                files = [
                    f
                    for s in sources
                    for f in project(
                        self.wait_data(s.kind, s.ref, s.optional, timeout) or {}, s.items, s.mode
                    )
                ]
                atomic_write_volume(path, files, fs_group)
                self.projected[name] = sources
            elif "persistentVolumeClaim" in vol or name in self.claims:
                claim = self.claims.get(name) or vol["persistentVolumeClaim"]["claimName"]
                path = self.cluster.workdir / "pvc" / claim
                if not path.exists():
                    path.mkdir(parents=True)
                    os.chmod(path, 0o777)  # local-path-provisioner: mkdir -m 0777
            else:
                raise PodFailed(self.name, "FailedMount", f"volume type of {name} not emulated")
            self.volumes[name] = path
        for tmpl in self.claims:
            if tmpl not in self.volumes:
                path = self.cluster.workdir / "pvc" / self.claims[tmpl]
                if not path.exists():
                    path.mkdir(parents=True)
                    os.chmod(path, 0o777)
                self.volumes[tmpl] = path
        self.make_nested_mountpoints()
        if self.cluster.automount(self.namespace, self.spec):
            path = base / "volumes" / "kube-api-access"
            token = self.cluster.token_for(
                self.namespace, self.spec.get("serviceAccountName", "default")
            )
            files = [
                ProjectedFile("token", token.encode(), 0o644),
                ProjectedFile("ca.crt", self.cluster.apiserver_ca, 0o644),
                ProjectedFile("namespace", self.namespace.encode(), 0o644),
            ]
            owner = token_owner(self.spec)
            if owner is not None or fs_group is not None:  # not for every user
                files[0] = ProjectedFile("token", token.encode(), 0o600)
            atomic_write_volume(path, files, fs_group)
            if owner is not None:
                os.chown(path / "..data" / "token", owner, -1)
            self.volumes["kube-api-access"] = path

    def make_nested_mountpoints(self) -> None:
        """pkg/volume/util/nested_volumes.go: a volume mounted inside a Secret,
        ConfigMap or projected volume's mountPath (Prometheus's rules under its
        config) gets its mountpoint made in that volume's directory, which the
        container then sees read-only: without it the runtime cannot mount there."""
        for c in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            mounts = c.get("volumeMounts") or []
            for parent in mounts:
                if parent["name"] not in self.projected or parent.get("subPath"):
                    continue
                for child in mounts:
                    rel = os.path.relpath(child["mountPath"], parent["mountPath"])
                    if child is parent or rel.startswith(".."):
                        continue
                    point = self.volumes[parent["name"]] / rel
                    point.mkdir(parents=True, exist_ok=True)
                    os.chmod(point, 0o755)

    def wait_data(self, kind: str, name: str, optional: bool, timeout: float) -> dict | None:
        data = self.cluster.data_of(kind, self.namespace, name)
        if data is not None or optional:
            return data
        try:
            return wait_until(
                lambda: self.cluster.data_of(kind, self.namespace, name),
                timeout=timeout,
                interval=0.3,
                what=f"{kind} {name}",
            )
        except TimeoutError:
            raise PodFailed(
                self.name,
                "ContainerCreating",
                f'MountVolume.SetUp failed: {kind.lower()} "{name}" not found',
            ) from None

    def refresh_projections(self) -> None:
        """The kubelet's periodic sync of Secret/ConfigMap volumes: swap ..data when
        the object changed."""
        for name, sources in self.projected.items():
            found = [(s, self.cluster.data_of(s.kind, self.namespace, s.ref)) for s in sources]
            if any(data is None and not s.optional for s, data in found):
                continue
            files = [f for s, data in found for f in project(data or {}, s.items, s.mode)]
            root = self.volumes[name]
            current = {
                f.path: (root / "..data" / f.path).read_bytes()
                for f in files
                if (root / "..data" / f.path).exists()
            }
            if current != {f.path: f.data for f in files}:
                atomic_write_volume(root, files, self.fs_group)

    def mounts_for(self, c: dict) -> dict[str, dict]:
        binds: dict[str, dict] = {}
        projected = {
            v["name"] for v in self.spec.get("volumes") or [] if volume_sources(v) is not None
        }
        for m in c.get("volumeMounts") or []:
            host = self.volumes[m["name"]]
            if m.get("subPath"):
                host = host / m["subPath"]
            ro = m.get("readOnly", False) or m["name"] in projected  # always ro
            binds[str(host)] = {"bind": m["mountPath"], "mode": "ro" if ro else "rw"}
        if "kube-api-access" in self.volumes:
            binds[str(self.volumes["kube-api-access"])] = {"bind": SA_DIR, "mode": "ro"}
        return binds

    # -- containers
    def docker_kwargs(self, c: dict) -> dict[str, Any]:
        sc = merged_security(self.spec, c)
        pod_sc = self.spec.get("securityContext") or {}
        kw: dict[str, Any] = {
            "network_mode": f"container:{self.pause_id}",
            "labels": {"mtlsdemo.pods": self.cluster.run_id, "io.kubernetes.pod.name": self.name},
            "detach": True,
            "healthcheck": NO_HEALTHCHECK,
        }
        if "runAsUser" in sc:
            kw["user"] = f"{sc['runAsUser']}" + (
                f":{sc['runAsGroup']}" if "runAsGroup" in sc else ""
            )
        groups = list(pod_sc.get("supplementalGroups") or [])
        if pod_sc.get("fsGroup") is not None:
            groups.append(pod_sc["fsGroup"])
        if groups:
            kw["group_add"] = [str(g) for g in groups]
        kw["read_only"] = bool(sc.get("readOnlyRootFilesystem"))
        caps = sc.get("capabilities") or {}
        if caps.get("drop"):
            kw["cap_drop"] = caps["drop"]
        if caps.get("add"):
            kw["cap_add"] = caps["add"]
        opts = []
        if sc.get("allowPrivilegeEscalation") is False:
            opts.append("no-new-privileges")
        seccomp = (sc.get("seccompProfile") or {}).get("type", "Unconfined")
        if seccomp == "Unconfined":
            opts.append("seccomp=unconfined")  # the kubelet's default when none is set
        elif seccomp != "RuntimeDefault":
            raise PodFailed(
                self.name, "CreateContainerConfigError", f"seccomp {seccomp} not emulated"
            )
        if opts:
            kw["security_opt"] = opts
        limits = (c.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            kw["mem_limit"] = parse_quantity_bytes(str(limits["memory"]))
            # the kubelet's default NoSwap: the limit is the memory, none of it swapped
            kw["memswap_limit"] = kw["mem_limit"]
        if "cpu" in limits:
            kw["nano_cpus"] = int(parse_quantity_cpus(str(limits["cpu"])) * 1e9)
        if c.get("workingDir"):
            kw["working_dir"] = c["workingDir"]
        return kw

    def create_container(self, c: dict) -> str:
        image = self.cluster.image_for(c["image"])
        user = self.cluster.docker.images.get(image).attrs["Config"].get("User") or ""
        refused = non_root_refusal(merged_security(self.spec, c), user)
        if refused is not None:
            raise PodFailed(
                self.name,
                "CreateContainerConfigError",
                f"{refused} (pod: {self.name}, container: {c['name']})",
            )
        env = self.env_for(c)
        kw = self.docker_kwargs(c)
        # command replaces the image's ENTRYPOINT (and drops its CMD), args its CMD
        if "command" in c:
            kw["entrypoint"] = [expand(a, env) for a in c["command"]]
            kw["command"] = [expand(a, env) for a in c.get("args") or []]
        elif "args" in c:
            kw["command"] = [expand(a, env) for a in c["args"]]
        cont = self.cluster.docker.containers.create(
            self.cluster.image_for(c["image"]),
            name=f"{self.cluster.run_id}-{self.name}-{c['name']}",
            environment=env,
            volumes=self.mounts_for(c),
            **kw,
        )
        return cont.id

    def start_pause(self) -> None:
        pause = self.cluster.on_network(
            f"{self.name}-pause",
            ["python3", "-c", "import signal; signal.pause()"],
            aliases=self.cluster.headless_aliases(self),
            hostname=self.hostname or self.name,
            labels={"io.kubernetes.pod.name": self.name},
        )
        self.pause_id = pause.id
        self.ip = self.cluster.ip_of(pause)

    def check_images(self) -> None:
        for c in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            if normalize_image(c["image"]) not in self.cluster.node_images:
                self.phase, self.reason = "Pending", "ImagePullBackOff"
                raise PodFailed(
                    self.name,
                    "ImagePullBackOff",
                    f'container {c["name"]}: image "{c["image"]}" is not on the node '
                    f"({normalize_image(c['image'])}; loaded: {', '.join(sorted(self.cluster.node_images))}) "
                    "and no registry has it",
                )

    def docker_container(self, name: str):
        return self.cluster.docker.containers.get(self.containers[name].docker_id)

    def exit_code(self, name: str) -> int | None:
        cont = self.docker_container(name)
        cont.reload()
        if cont.status in ("exited", "dead"):
            return int(cont.attrs["State"]["ExitCode"])
        return None

    def oom_killed(self, name: str) -> bool:
        cont = self.docker_container(name)
        cont.reload()
        return bool(cont.attrs["State"].get("OOMKilled"))

    def logs(self, name: str) -> str:
        with contextlib.suppress(NotFound, KeyError, APIError, TypeError):
            return self.docker_container(name).logs().decode(errors="replace")
        return ""

    def all_logs(self) -> str:
        return "\n".join(
            f"[pod/{self.name}/{n}] {line}"
            for n in self.containers
            for line in self.logs(n).splitlines()
        )

    def probe(self, c: dict, probe: dict) -> bool:
        timeout = probe.get("timeoutSeconds", 1)
        try:
            if "exec" in probe:
                r = subprocess.run(
                    [
                        "docker",
                        "exec",
                        self.containers[c["name"]].docker_id,
                        *probe["exec"]["command"],
                    ],
                    capture_output=True,
                    timeout=timeout,
                    check=False,
                )
                return r.returncode == 0
            if "httpGet" in probe:
                g = probe["httpGet"]
                port = self.container_port(c, g["port"])
                url = f"http://{self.ip}:{port}{g.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    return 200 <= resp.status < 400
            if "tcpSocket" in probe:
                port = self.container_port(c, probe["tcpSocket"]["port"])
                socket.create_connection((self.ip, port), timeout=timeout).close()
                return True
            if "grpc" in probe:
                with grpc.insecure_channel(f"{self.ip}:{probe['grpc']['port']}") as ch:
                    resp = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")),
                        timeout=timeout,
                    )
                    return resp.status == health_pb2.HealthCheckResponse.SERVING
        except (OSError, subprocess.TimeoutExpired, ValueError, grpc.RpcError):
            return False
        raise PodFailed(self.name, "InvalidProbe", f"probe handler of {c['name']} not emulated")

    def wait_startup(self, c: dict, timeout: float) -> None:
        probe = c.get("startupProbe")
        state = self.containers[c["name"]]
        if probe is None:
            state.started = True
            return
        period = probe.get("periodSeconds", 10)
        threshold = probe.get("failureThreshold", 3)
        not_before = time.monotonic() + probe.get("initialDelaySeconds", 0)

        def passed() -> bool:
            if self.exit_code(c["name"]) is not None:
                raise PodFailed(self.name, "Error", f"{c['name']} exited during its startup probe")
            return time.monotonic() >= not_before and self.probe(c, probe)

        try:  # the kubelet's schedule: every periodSeconds, failureThreshold times
            wait_until(
                passed,
                timeout=probe.get("initialDelaySeconds", 0) + period * threshold,
                interval=period,
                what=f"startup probe of {c['name']}",
            )
        except TimeoutError:
            raise PodFailed(
                self.name, "Unhealthy", f"startup probe of {c['name']} failed {threshold} times"
            ) from None
        state.started = True

    def run_init(self, c: dict, restart_policy: str, on_failure: Callable[[str], None]) -> None:
        state = self.containers[c["name"]] = ContainerState(c["name"], c, kind="init")
        while True:
            state.docker_id = self.create_container(c)
            self.docker_container(c["name"]).start()
            code = self.wait_exit(c["name"])
            if code == 0:
                return
            detail = f"{c['name']} exited {code}: {self.logs(c['name']).strip()[-600:]}"
            on_failure(detail)
            if restart_policy == "Never":
                raise PodFailed(self.name, "Init:Error", detail)
            state.restarts += 1
            with contextlib.suppress(APIError):
                self.docker_container(c["name"]).remove(force=True)

    def wait_exit(self, name: str) -> int:
        while True:
            code = self.exit_code(name)
            if code is not None:
                return code
            if self._stop.wait(0.2):
                raise PodFailed(self.name, "Terminated", f"{name} stopped by the runner")

    def start(
        self, timeout: float = 120, on_failure: Callable[[str], None] = lambda why: None
    ) -> None:
        """Pending -> Running: images, volumes, the sandbox, init containers in order,
        native sidecars gated on their startupProbe, then the containers."""
        self.check_images()
        self.make_volumes(timeout)
        self.start_pause()
        restart = self.spec.get("restartPolicy", "Always")
        for c in self.spec.get("initContainers") or []:
            if c.get("restartPolicy") == "Always":
                state = self.containers[c["name"]] = ContainerState(c["name"], c, kind="sidecar")
                state.docker_id = self.create_container(c)
                self.docker_container(c["name"]).start()
                self.wait_startup(c, timeout)
            else:
                self.run_init(c, restart, on_failure)
        for c in self.spec["containers"]:
            state = self.containers[c["name"]] = ContainerState(c["name"], c)
            state.docker_id = self.create_container(c)
        for c in self.spec["containers"]:
            self.docker_container(c["name"]).start()
        self.phase = "Running"
        self._prober = threading.Thread(
            target=self.probe_loop, name=f"prober-{self.name}", daemon=True
        )
        self._prober.start()

    def probe_loop(self) -> None:
        """Readiness and liveness, each on its own period; restarts per restartPolicy."""
        due: dict[tuple[str, str], float] = {}
        fails: dict[tuple[str, str], int] = {}
        oks: dict[tuple[str, str], int] = {}
        restart = self.spec.get("restartPolicy", "Always")
        while not self._stop.is_set():
            now = time.monotonic()
            for state in list(self.containers.values()):
                c = state.spec
                if state.docker_id is None or state.kind == "init":
                    continue
                if self.exit_code(state.name) is not None:
                    state.ready = False
                    # a Job's containers are restarted by run_job (OnFailure) or not at all
                    if (state.sidecar or restart == "Always") and not self._stop.is_set():
                        self.restart(state)
                    continue
                if not state.started:
                    if c.get("startupProbe") is None:
                        state.started = True
                    else:
                        state.started = self.probe(c, c["startupProbe"])
                        continue
                for kind in ("readinessProbe", "livenessProbe"):
                    probe = c.get(kind)
                    key = (state.name, kind)
                    if probe is None:
                        if kind == "readinessProbe":
                            state.ready = True
                        continue
                    if key not in due:
                        due[key] = now + probe.get("initialDelaySeconds", 0)
                    if now < due[key]:
                        continue
                    due[key] = now + probe.get("periodSeconds", 10)
                    if self.probe(c, probe):
                        oks[key], fails[key] = oks.get(key, 0) + 1, 0
                        if kind == "readinessProbe" and oks[key] >= probe.get(
                            "successThreshold", 1
                        ):
                            state.ready = True
                    else:
                        fails[key], oks[key] = fails.get(key, 0) + 1, 0
                        if fails[key] >= probe.get("failureThreshold", 3):
                            if kind == "readinessProbe":
                                state.ready = False
                            else:
                                self.restart(state)
                                fails[key] = 0
            self.cluster.endpoints_changed()
            self._stop.wait(0.3)

    def containers_succeeded(self, on_failure: Callable[[str], None]) -> bool:
        """A Job pod's regular containers all exited 0. One that failed is counted
        (on_failure) and restarted in place (OnFailure) or fails the pod (Never)."""
        codes = {c["name"]: self.exit_code(c["name"]) for c in self.spec["containers"]}
        bad = [n for n, v in codes.items() if v not in (None, 0)]
        if bad:
            state = self.containers[bad[0]]
            if state.waiting == "CrashLoopBackOff":  # counted when it exited
                if time.monotonic() >= state.restart_at:
                    self.restart(state)
                return False
            how = "OOMKilled" if self.oom_killed(bad[0]) else f"exit {codes[bad[0]]}"
            why = f"{bad[0]}: {how}: {self.logs(bad[0]).strip()[-600:]}"
            on_failure(why)
            if self.spec.get("restartPolicy") == "Never":
                raise PodFailed(self.name, "Error", why)
            state.back_off()
        return all(v == 0 for v in codes.values())

    def restart(self, state: ContainerState) -> None:
        state.restarts += 1
        state.waiting = None
        state.ready = False
        state.started = state.spec.get("startupProbe") is None
        with contextlib.suppress(APIError):
            self.docker_container(state.name).restart(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._prober is not None:
            self._prober.join(10)
        # regular containers first, native sidecars last (they stop after the app)
        order = [s for s in self.containers.values() if not s.sidecar]
        order += [s for s in self.containers.values() if s.sidecar]
        for s in order:
            with contextlib.suppress(APIError, NotFound, TypeError):
                self.docker_container(s.name).stop(timeout=5)
        if self.pause_id is not None:  # the sandbox goes last
            with contextlib.suppress(APIError, NotFound):
                self.cluster.docker.containers.get(self.pause_id).stop(timeout=1)
        if self.phase != "Succeeded":
            self.phase = "Terminated"


@dataclass(frozen=True)
class Source:
    """One Secret or ConfigMap a volume projects (a ``projected`` volume has several,
    written together by one AtomicWriter)."""

    kind: str
    ref: str
    items: list | None
    mode: int
    optional: bool


def volume_sources(vol: dict) -> list[Source] | None:
    """What a secret, configMap or projected volume holds; None for other volumes."""

    def one(kind: str, src: dict, default_mode: int) -> Source:
        return Source(
            kind,
            src.get("secretName") or src["name"],
            src.get("items"),
            src.get("defaultMode", default_mode),
            bool(src.get("optional")),
        )

    if "secret" in vol:
        return [one("Secret", vol["secret"], 0o644)]
    if "configMap" in vol:
        return [one("ConfigMap", vol["configMap"], 0o644)]
    if "projected" in vol:
        mode = vol["projected"].get("defaultMode", 0o644)
        out = []
        for src in vol["projected"]["sources"]:
            (kind,) = src
            if kind not in ("secret", "configMap"):
                raise PodFailed("", "FailedMount", f"projected source {kind} not emulated")
            out.append(one("Secret" if kind == "secret" else "ConfigMap", src[kind], mode))
        return out
    return None


def project(data: dict[str, bytes], items: list | None, default_mode: int) -> list[ProjectedFile]:
    if items is None:
        return [ProjectedFile(k, v, default_mode) for k, v in sorted(data.items())]
    return [
        ProjectedFile(i["path"], data[i["key"]], i.get("mode", default_mode))
        for i in items
        if i["key"] in data
    ]


class Cluster:
    """One namespace's worth of a cluster on Docker: the rendered objects, a stand-in
    API server, Services as forwarders, pods run with the kubelet's rules."""

    def __init__(
        self, objects: list[dict], workdir: Path, node_images: Iterable[str], pause_image: str
    ) -> None:
        self.objects = objects
        self.workdir = workdir
        self.node_images = {normalize_image(i) for i in node_images}
        self.substitutes: dict[str, str] = {}  # a rendered image -> the local one run for it
        self.pause_image = pause_image
        self.docker = docker.from_env()
        self.run_id = "k8s-" + uuid.uuid4().hex[:6]
        self.network = self.run_id
        self.node_ip = ""
        self.apiserver_ip = ""
        self.apiserver_ca = b""
        self.tokens: dict[str, str] = {}  # "ns/sa" -> token
        self.pods: list[Pod] = []
        self.service_ips: dict[tuple[str, str], str] = {}
        self._endpoints_lock = threading.Lock()
        self._last_endpoints: dict[str, str] = {}
        self._published: dict[str, str] = {}  # pod name -> what the API shows of it now
        self._resource_version = 1_000_000  # pods' versions: above the stand-in's Secrets'
        self._stop = threading.Event()
        self._sync: threading.Thread | None = None

    def load_substitute(self, rendered: str, local: str) -> None:
        """Put ``local`` on the node under the rendered name (`kind load` of an image
        built here for a public one no registry serves): the one difference from the
        rendered pod, and it is the image's contents only."""
        self.node_images.add(normalize_image(rendered))
        self.substitutes[normalize_image(rendered)] = local

    def image_for(self, rendered: str) -> str:
        return self.substitutes.get(normalize_image(rendered), rendered)

    # -- objects
    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def data_of(self, kind: str, ns: str, name: str) -> dict[str, bytes] | None:
        if kind == "Secret":
            path = self.workdir / "apiserver" / "secrets" / ns / f"{name}.json"
            with contextlib.suppress(FileNotFoundError, ValueError):
                obj = json.loads(path.read_text())
                return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            for o in self.of_kind("Secret"):
                if o["metadata"]["name"] == name:
                    return {k: base64.b64decode(v) for k, v in (o.get("data") or {}).items()}
            return None
        for o in self.of_kind("ConfigMap"):
            if o["metadata"]["name"] == name and o["metadata"].get("namespace", ns) == ns:
                return {k: str(v).encode() for k, v in (o.get("data") or {}).items()}
        return None

    def automount(self, ns: str, spec: dict) -> bool:
        if "automountServiceAccountToken" in spec:
            return bool(spec["automountServiceAccountToken"])
        sa = spec.get("serviceAccountName", "default")
        for o in self.of_kind("ServiceAccount"):
            if o["metadata"]["name"] == sa:
                return o.get("automountServiceAccountToken", True)
        return True

    def token_for(self, ns: str, sa: str) -> str:
        return self.tokens.setdefault(f"{ns}/{sa}", secrets.token_urlsafe(24))

    def rbac_rules(self) -> dict[str, list[dict]]:
        roles = {
            (r["metadata"].get("namespace"), r["metadata"]["name"]): r.get("rules", [])
            for r in self.of_kind("Role")
        }
        out: dict[str, list[dict]] = {}
        for b in self.of_kind("RoleBinding"):
            ns = b["metadata"].get("namespace")
            rules = roles.get((ns, b["roleRef"]["name"]), [])
            for s in b.get("subjects") or []:
                if s["kind"] == "ServiceAccount":
                    out.setdefault(f"{s.get('namespace', ns)}/{s['name']}", []).extend(rules)
        return out

    # -- the control plane
    def start(self) -> Cluster:
        self.docker.networks.create(self.network, labels={"mtlsdemo.pods": self.run_id})
        gw = self.docker.networks.get(self.network).attrs["IPAM"]["Config"][0].get("Gateway", "")
        self.node_ip = gw
        state = self.workdir / "apiserver"
        state.mkdir(parents=True)
        os.chmod(state, 0o777)
        for sa in self.of_kind("ServiceAccount"):
            self.token_for(sa["metadata"]["namespace"], sa["metadata"]["name"])
        (state / "config.json").write_text(
            json.dumps(
                {
                    "port": APISERVER_PORT,
                    "tokens": {t: sa for sa, t in self.tokens.items()},
                    "rules": self.rbac_rules(),
                }
            )
        )
        shutil.copy(HERE / "apiserver_standin.py", state / "apiserver_standin.py")
        self._service_container(
            "kube-apiserver",
            ["python3", "/state/apiserver_standin.py", "/state"],
            {str(state): {"bind": "/state", "mode": "rw"}},
            aliases=["kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        )
        self.apiserver_ip = wait_until(
            lambda: (state / "ready").exists() and (state / "ready").read_text(),
            timeout=60,
            interval=0.2,
            what="the API server stand-in",
        )
        self.apiserver_ca = (state / "tls" / "tls.crt").read_bytes()
        for svc in self.of_kind("Service"):
            if svc["spec"].get("clusterIP") != "None":
                self._start_service(svc)
        self._sync = threading.Thread(target=self._sync_loop, name="volume-sync", daemon=True)
        self._sync.start()
        return self

    def on_network(
        self, name: str, cmd: list[str], aliases: list[str], labels: dict | None = None, **kw: Any
    ) -> Any:
        """A started container of the pause image on the cluster network, with DNS aliases."""
        c = self.docker.containers.create(
            self.pause_image,
            entrypoint=cmd[:1],
            command=cmd[1:],
            name=f"{self.run_id}-{name}",
            labels={"mtlsdemo.pods": self.run_id, **(labels or {})},
            network=self.network,
            detach=True,
            healthcheck=NO_HEALTHCHECK,
            **kw,
        )
        if aliases:  # aliases are set when attaching: re-attach with them
            net = self.docker.networks.get(self.network)
            net.disconnect(c)
            net.connect(c, aliases=aliases)
        c.start()
        return c

    def ip_of(self, container: Any) -> str:
        container.reload()
        return container.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]

    def _service_container(
        self, name: str, cmd: list[str], volumes: dict, aliases: list[str]
    ) -> Any:
        # root, as kube-proxy is: a Service may listen below 1024
        return self.on_network(name, cmd, aliases, volumes=volumes, user="0:0")

    def _start_service(self, svc: dict) -> None:
        name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
        cfg = self.workdir / "services" / name
        cfg.mkdir(parents=True)
        os.chmod(cfg, 0o777)
        (cfg / "service.json").write_text(json.dumps({"ports": svc["spec"]["ports"]}))
        (cfg / "endpoints.json").write_text("{}")
        shutil.copy(HERE / "service_proxy.py", cfg / "service_proxy.py")
        c = self._service_container(
            f"svc-{name}",
            ["python3", "/config/service_proxy.py", "/config"],
            {str(cfg): {"bind": "/config", "mode": "rw"}},
            aliases=dns_names(name, ns),
        )
        wait_until(
            lambda: (cfg / "listening").exists(), timeout=60, interval=0.2, what=f"service {name}"
        )
        self.service_ips[(ns, name)] = self.ip_of(c)

    def service_links(self, ns: str) -> dict[str, str]:
        """The docker-links-style variables the kubelet injects for every Service
        with a cluster IP in the pod's namespace."""
        env: dict[str, str] = {}
        for svc in self.of_kind("Service"):
            key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
            if key[0] != ns or key not in self.service_ips:
                continue
            ip, prefix = self.service_ips[key], key[1].upper().replace("-", "_")
            ports = svc["spec"]["ports"]
            env[f"{prefix}_SERVICE_HOST"] = ip
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            env[f"{prefix}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
            for p in ports:
                proto = p.get("protocol", "TCP")
                base = f"{prefix}_PORT_{p['port']}_{proto}"
                env[base] = f"{proto.lower()}://{ip}:{p['port']}"
                env[f"{base}_PROTO"], env[f"{base}_PORT"], env[f"{base}_ADDR"] = (
                    proto.lower(),
                    str(p["port"]),
                    ip,
                )
                if p.get("name"):
                    env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(
                        p["port"]
                    )
        return env

    def headless_aliases(self, pod: Pod) -> list[str]:
        names: list[str] = []
        for svc in self.of_kind("Service"):
            if svc["spec"].get("clusterIP") != "None":
                continue
            if selects(svc["spec"].get("selector"), pod.labels):
                sname, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
                names += dns_names(sname, ns)
                if pod.hostname and pod.subdomain == sname:
                    names += dns_names(f"{pod.hostname}.{sname}", ns)
        return names

    def publish_pods(self) -> None:
        """What the API server shows of each pod (Prometheus's pod discovery reads
        it), written for the stand-in when it changes, each change with a new
        resourceVersion; a pod gone is marked deleted."""
        for pod in list(self.pods):
            gone = pod.phase in ("Terminated", "Succeeded", "Failed") or not pod.ip
            key = "gone" if gone else json.dumps([pod.phase, pod.ip, pod.ready()])
            if self._published.get(pod.name) == key or (gone and pod.name not in self._published):
                continue
            self._published[pod.name] = key
            self._resource_version += 1
            obj = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "uid": pod.uid,
                    "labels": pod.labels,
                    "annotations": pod.annotations,
                    "resourceVersion": str(self._resource_version),
                },
                "spec": {**pod.spec, "nodeName": "mtlsdemo-control-plane"},
                "status": {
                    "phase": pod.phase,
                    "podIP": pod.ip,
                    "hostIP": self.node_ip,
                    "conditions": [{"type": "Ready", "status": "True" if pod.ready() else "False"}],
                },
                "deleted": gone,  # the stand-in's tombstone mark, never sent
            }
            path = self.workdir / "apiserver" / "pods" / pod.namespace / f"{pod.name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(obj))
            os.replace(tmp, path)

    def endpoints_changed(self) -> None:
        """The EndpointSlice controller: each ClusterIP Service's ready endpoints,
        named targetPorts resolved from the pod's regular containers only."""
        with self._endpoints_lock:
            self.publish_pods()
            for svc in self.of_kind("Service"):
                name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
                if (ns, name) not in self.service_ips:
                    continue
                out: dict[str, list[str]] = {}
                for p in svc["spec"]["ports"]:
                    eps = []
                    for pod in self.pods:
                        if pod.namespace != ns or not selects(
                            svc["spec"].get("selector"), pod.labels
                        ):
                            continue
                        if not (pod.ready() or svc["spec"].get("publishNotReadyAddresses")):
                            continue
                        target = resolve_target_port(pod.spec, p.get("targetPort", p["port"]))
                        if target is not None:
                            eps.append(f"{pod.ip}:{target}")
                    out[str(p["port"])] = eps
                text = json.dumps(out, sort_keys=True)
                if self._last_endpoints.get(name) != text:
                    path = self.workdir / "services" / name / "endpoints.json"
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(text)
                    os.replace(tmp, path)
                    self._last_endpoints[name] = text

    def endpoints(self, service: str) -> dict[str, list[str]]:
        return json.loads((self.workdir / "services" / service / "endpoints.json").read_text())

    def _sync_loop(self) -> None:
        while not self._stop.wait(SECRET_SYNC_SECONDS):
            for pod in list(self.pods):
                if pod.phase == "Running":
                    with contextlib.suppress(OSError):
                        pod.refresh_projections()

    # -- workloads
    def new_pod(self, template: dict, name: str, **extra: Any) -> Pod:
        meta = template.get("metadata") or {}
        ns = self.namespace_of(template)
        pod = Pod(
            self,
            name,
            ns,
            template["spec"],
            dict(meta.get("labels") or {}),
            dict(meta.get("annotations") or {}),
            **extra,
        )
        self.pods.append(pod)
        return pod

    def namespace_of(self, obj: dict) -> str:
        return (obj.get("metadata") or {}).get("namespace") or self.default_namespace

    @property
    def default_namespace(self) -> str:
        return next(o["metadata"]["name"] for o in self.of_kind("Namespace"))

    def run_workload(self, obj: dict, timeout: float = 180) -> list[Pod]:
        """A Deployment's or StatefulSet's replicas, started concurrently as the
        kubelet would (threads); returns once every pod is Running."""
        spec, name = obj["spec"], obj["metadata"]["name"]
        template = {**spec["template"]}
        template.setdefault("metadata", {}).setdefault(
            "namespace", obj["metadata"].get("namespace")
        )
        pods: list[Pod] = []
        for i in range(spec.get("replicas", 1)):
            if obj["kind"] == "StatefulSet":
                claims = {
                    t["metadata"]["name"]: f"{t['metadata']['name']}-{name}-{i}"
                    for t in spec.get("volumeClaimTemplates") or []
                }
                pods.append(
                    self.new_pod(
                        template,
                        f"{name}-{i}",
                        hostname=f"{name}-{i}",
                        subdomain=spec.get("serviceName"),
                        claims=claims,
                    )
                )
            else:
                pods.append(self.new_pod(template, f"{name}-{uuid.uuid4().hex[:5]}"))
        errors: list[BaseException] = []

        def start(p: Pod) -> None:
            try:
                p.start(timeout)
            except BaseException as e:  # reported below, with the pod's logs
                errors.append(e)

        threads = [threading.Thread(target=start, args=(p,)) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 30)
        if errors:
            raise errors[0]
        return pods

    def rollout(self, obj: dict, timeout: float = 180) -> list[Pod]:
        """`kubectl rollout status`: every replica Ready."""
        pods = self.run_workload(obj, timeout)
        wait_until(
            lambda: all(p.ready() for p in pods),
            timeout=timeout,
            interval=0.3,
            what=f"{obj['kind']}/{obj['metadata']['name']} ready",
            describe=lambda: (
                {p.name: {c.name: c.ready for c in p.containers.values()} for p in pods}
                | {"logs": pods[0].all_logs()[-2000:]}
            ),
        )
        return pods

    def run_job(self, job: dict, timeout: float | None = None) -> Pod:
        """A Job to completion, as the Job controller and the kubelet run it:
        restartPolicy OnFailure restarts in place, Never makes a new pod, either
        counts against backoffLimit; activeDeadlineSeconds bounds it. Raises
        PodFailed with the reason `kubectl describe job` would give."""
        spec = job["spec"]
        backoff = spec.get("backoffLimit", 6)
        deadline = spec.get("activeDeadlineSeconds", timeout or 300)
        template = {**spec["template"]}
        template.setdefault("metadata", {}).setdefault(
            "namespace", job["metadata"].get("namespace")
        )
        name = job["metadata"]["name"]
        failures = 0
        end = time.monotonic() + deadline

        def failed(why: str) -> None:
            nonlocal failures
            failures += 1
            if failures > backoff:
                raise PodFailed(
                    name,
                    "BackoffLimitExceeded",
                    f"{failures} failure(s), backoffLimit {backoff}; last: {why}",
                )

        while True:
            pod = self.new_pod(template, f"{name}-{uuid.uuid4().hex[:5]}")
            try:
                pod.start(max(1.0, end - time.monotonic()), on_failure=failed)
                try:
                    wait_until(
                        lambda pod=pod: pod.containers_succeeded(failed),
                        timeout=max(0.0, end - time.monotonic()),
                        interval=0.3,
                        what=f"Job {name}",
                    )
                except TimeoutError:
                    raise PodFailed(
                        name, "DeadlineExceeded", f"active longer than {deadline}s"
                    ) from None
                pod.phase = "Succeeded"
                pod.stop()
                return pod
            except PodFailed as e:
                pod.phase, pod.reason = "Failed", e.reason
                e.logs = pod.all_logs()  # type: ignore[attr-defined]
                pod.stop()
                if e.reason in ("BackoffLimitExceeded", "DeadlineExceeded", "ImagePullBackOff"):
                    raise
                if e.reason not in ("Init:Error", "Error"):  # those were counted already
                    failed(str(e))
                if time.monotonic() > end:
                    raise PodFailed(
                        name, "DeadlineExceeded", f"active longer than {deadline}s"
                    ) from e

    def close(self) -> None:
        self._stop.set()
        for pod in self.pods:
            pod._stop.set()
        for c in self.docker.containers.list(
            all=True, filters={"label": f"mtlsdemo.pods={self.run_id}"}
        ):
            with contextlib.suppress(APIError, NotFound):
                c.remove(force=True)
        with contextlib.suppress(APIError, NotFound):
            self.docker.networks.get(self.network).remove()


def dns_names(name: str, ns: str) -> list[str]:
    return [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]


def resolve_target_port(pod_spec: dict, target: int | str) -> int | None:
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for c in pod_spec["containers"]:  # regular containers only (see module docstring)
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None
