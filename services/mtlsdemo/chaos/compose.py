"""`mtlsdemo chaos --compose PROJECT`: the same soak against a running
docker-compose project (`make compose-up`): containers killed and restarted,
frozen (`docker pause`: the cgroup freezer, like SIGSTOP), certificates renewed
and revoked through the project's own `certs` service; the audit reads a copy of
the ledger's database out of its container.

A compose "pod" is two containers sharing the app's network namespace: killing
the app destroys that namespace, and the sidecar left in it has no network until
it restarts too. So a killed app restarts with its sidecar (in Kubernetes the
pod's pause container holds the namespace and only the app restarts). There is no
fault proxy on the MTD/1 hop here: the network faults are local-only."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mtlsdemo.mesh.compose import ComposeProject
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.waiting import WaitTimeout, wait_until

if TYPE_CHECKING:
    from mtlsdemo.chaos.faultproxy import FaultProxy

MESH = ("ledger", "ledger-sidecar", "gateway", "gateway-sidecar")
POD_SIDECAR = {"ledger": "ledger-sidecar", "gateway": "gateway-sidecar"}


class ComposeMesh:
    proxy: FaultProxy | None = None  # no network faults against compose

    def __init__(self, project: str, compose_file: Path, work: Path, gateway: str) -> None:
        self.project, self.compose_file, self.work = project, compose_file, work
        self._gateway = gateway
        self.compose = ComposeProject(project, compose_file, "chaos --compose")
        self.compose.binary()  # says at once when docker or docker-compose is missing

    # --- plumbing ---
    def _docker(self, *args: str, timeout: float = 60) -> str:
        r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise PkiError(f"chaos --compose: docker {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def _compose(self, *args: str, timeout: float = 120) -> str:
        r = subprocess.run(
            self.compose.argv(*args), capture_output=True, text=True, timeout=timeout
        )
        if r.returncode != 0:
            raise PkiError(
                f"chaos --compose: docker-compose {' '.join(args)}: {r.stderr.strip()[-400:]}"
            )
        return r.stdout

    def container(self, service: str) -> str:
        return self.compose.container(service)

    def _health(self, service: str) -> str:
        out = self._docker("inspect", self.container(service))
        state = json.loads(out)[0]["State"]
        return str(state.get("Health", {}).get("Status") or state["Status"])

    # --- the Mesh protocol ---
    @property
    def gateway(self) -> str:
        return self._gateway

    @property
    def cli_dir(self) -> Path:
        return self.work / "cli"

    def start(self) -> None:
        try:
            wait_until(self.ready, timeout=120, what="every mesh container healthy", interval=1)
        except WaitTimeout:
            raise PkiError(
                f"chaos --compose {self.project}: the mesh's containers are not all healthy "
                f"({', '.join(f'{s} {self._health(s)}' for s in MESH)}); start it with "
                "`make compose-up` first"
            ) from None
        # the cli identity, out of the one-shot certs container's volume
        self._docker("cp", f"{self.container('certs')}:/certs/cli/.", str(self.cli_dir))
        (self.cli_dir / "tls.key").chmod(0o600)

    def ready(self) -> bool:
        try:
            return all(self._health(s) == "healthy" for s in MESH)
        except (PkiError, IndexError, KeyError):
            return False

    def stop(self) -> None:
        for s in MESH:  # never leave a frozen container behind
            subprocess.run(["docker", "unpause", self.container(s)], capture_output=True)

    def ledger_db(self) -> Path:
        out = self.work / "ledger-data"
        shutil.rmtree(out, ignore_errors=True)
        self._docker("cp", f"{self.container('ledger')}:/data/.", str(out))
        return out / "ledger.db"

    def kill(self, target: str, hold: float) -> str:
        self._docker("kill", "-s", "KILL", self.container(target))
        time.sleep(hold)
        self._docker("start", self.container(target))
        sidecar = POD_SIDECAR.get(target)
        if sidecar is None:
            return f"container down {hold:.1f}s, started again"
        self._docker("restart", "-t", "2", self.container(sidecar))  # into the new namespace
        return f"container down {hold:.1f}s, started again with its sidecar (a new netns)"

    def pause(self, target: str, hold: float) -> str:
        self._docker("pause", self.container(target))
        time.sleep(hold)
        self._docker("unpause", self.container(target))
        return f"frozen {hold:.1f}s (docker pause)"

    def renew(self) -> str:
        self._compose(
            "run", "--rm", "certs", "certs", "bootstrap", "--out", "/certs", "--force",
            "--service", "gateway", "--service", "ledger",
        )  # fmt: skip
        return "gateway and ledger re-issued by the certs service"

    def rotate_ca(self, load: object) -> str:
        raise PkiError(
            "chaos --compose: certs:rotate-ca is local-only for now (see docs/operations.md)"
        )

    def revoke_and_reissue(self) -> str:
        self._compose(
            "run", "--rm", "certs", "certs", "revoke", "ledger", "--out", "/certs",
            "--reason", "key_compromise",
        )  # fmt: skip
        self._compose(
            "run", "--rm", "certs", "certs", "bootstrap", "--out", "/certs",
            "--service", "gateway", "--service", "ledger", "--service", "cli",
        )  # fmt: skip
        return "ledger revoked and re-issued by the certs service"
