"""`mtlsdemo agent` as a real process, its sockets in a short private directory
(a Unix socket path holds 107 bytes; pytest's tmp paths can be longer)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mtlsdemo.addresses import free_port

from support.processes import Proc, mtlsdemo, wait_for
from support.sidecars import http_get


class AgentProc:
    """An agent issuing from ``certs`` for the named workloads."""

    def __init__(
        self,
        root: Path,
        certs: Path,
        ttl: str = "10s",
        *workloads: str,
        extra: tuple[str, ...] = (),
        admin: int | None = None,
        name: str = "agent",
    ) -> None:
        self.sockets = Path(tempfile.mkdtemp(prefix="mta-", dir="/tmp"))
        self.admin = admin or free_port()
        names = workloads or ("gateway", "ledger")
        argv = mtlsdemo(
            "agent",
            "--certs-dir",
            str(certs),
            "--socket-dir",
            str(self.sockets),
            "--svid-ttl",
            ttl,
            "--admin-listen",
            f"127.0.0.1:{self.admin}",
            *(a for n in names for a in ("--workload", n)),
            *extra,
        )
        self.proc = Proc(name, argv, root / f"{name}.log").start()
        wait_for(
            lambda: http_get(self.admin, "/healthz")[0] == 200,
            timeout=20,
            ignore=(OSError,),
            what="agent /healthz",
            check=self.proc.assert_alive,
        )

    def socket(self, workload: str) -> Path:
        return self.sockets / workload / "agent.sock"

    def address(self, workload: str) -> str:
        return f"unix://{self.socket(workload)}"

    def status(self) -> dict:
        return json.loads(http_get(self.admin, "/status")[1])

    def stop(self) -> int:
        rc = self.proc.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)
        return rc
