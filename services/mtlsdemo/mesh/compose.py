"""A running docker-compose project seen from the host (`make compose-up`).

`break --compose` and `tour --compose` run their own command again in the
project's `breaker` service: a container in the gateway's pod (its network
namespace, where the gateway sidecar's route to the ledger listens on loopback)
holding the CA's volume, as the `certs` service does. The host never gets the CA
key; the scenario's report is printed by the container, as the local run prints it.
`chaos --compose` drives the same project's containers."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mtlsdemo.pki.errors import PkiError

BREAKER = "breaker"  # the compose service the scenarios and the tour run in


@dataclass(frozen=True)
class ComposeProject:
    """A compose project by name, and the file that defines its services."""

    name: str
    file: Path
    who: str = "compose"  # the command asking, for its error lines

    def binary(self) -> str:
        found = shutil.which("docker-compose")
        if shutil.which("docker") is None or found is None:
            raise PkiError(f"{self.who}: needs docker and docker-compose on PATH")
        return found

    def argv(self, *args: str) -> list[str]:
        return [self.binary(), "-f", str(self.file), "-p", self.name, *args]

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"  # compose v1 names (v2 with --compatibility)

    def running(self, service: str) -> bool:
        r = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Running}}", self.container(service)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return r.returncode == 0 and r.stdout.strip() == "true"

    def run_in_breaker(self, command: list[str], tty: bool) -> int:
        """``mtlsdemo COMMAND`` in the breaker container; its exit code. The container
        prints its own report (and its own one-line errors) to this terminal."""
        self.binary()  # docker and docker-compose first: said in one line if missing
        if not self.file.is_file():
            raise PkiError(
                f"{self.who}: no compose file at {self.file}; run it from the clone "
                "(where `make compose-up` ran) or give --compose-file"
            )
        if not (self.running("gateway") and self.running("ledger")):
            raise PkiError(
                f"{self.who}: no running compose mesh in project {self.name!r} (its gateway "
                f"and ledger containers are not up); start it with `make compose-up` first"
            )
        flags = [] if tty else ["-T"]  # no terminal here: no pseudo-terminal there
        return subprocess.run(
            self.argv("run", "--rm", "--no-deps", *flags, BREAKER, *command), check=False
        ).returncode
