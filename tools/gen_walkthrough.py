"""Regenerate docs/tls-walkthrough.md from a real run: `mtlsdemo run` on free
ports in a temp dir, then `mtlsdemo tour --non-interactive --markdown` against it.
`make walkthrough` calls this; tests/integration/test_tour.py fails when the
committed document no longer matches what the tour prints (see normalize())."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "tls-walkthrough.md"


def normalize(text: str) -> str:
    """What may differ between two honest runs: randoms, keys, serials, times, ports."""
    text = re.sub(r"[0-9a-f]{8,}", "<hex>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?", "<time>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"\(\d+ bytes\)", "(<n> bytes)", text)  # DER ECDSA signatures: 70-72 bytes
    text = re.sub(r"\d+\.\d+ ms", "<t> ms", text)  # measured times (the tour's step 3)
    text = re.sub(r"handshake \d+ B vs \d+ B", "handshake <n> B vs <n> B", text)  # signatures' DER
    # step 4's capture: one call's size at two hops (HPACK state: earlier calls count)
    text = re.sub(r"port \d+", "port <port>", text)
    text = re.sub(r"\d+ bytes", "<n> bytes", text)
    text = re.sub(r"(at byte|the same) \d+", r"\1 <n>", text)
    return text


def tour_markdown(work: Path) -> str:
    sys.path.insert(0, str(ROOT / "services"))
    from mtlsdemo.addresses import mesh_env, run_port_flags, run_ports

    ports = run_ports()
    argv = [
        sys.executable, "-m", "mtlsdemo", "run", "--traffic-seconds", "0",
        "--certs-dir", "certs", "--data-dir", "var", *run_port_flags(ports),
    ]  # fmt: skip
    log = (work / "run.log").open("w")
    proc = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    try:
        from mtlsdemo.waiting import wait_until

        def alive() -> None:
            if proc.poll() is not None:
                raise SystemExit("mtlsdemo run did not start:\n" + (work / "run.log").read_text())

        wait_until(
            lambda: "== running" in (work / "run.log").read_text(),
            timeout=60,
            what="mtlsdemo run to be up",
            check=alive,
        )
        env = {**os.environ, **mesh_env(ports)}
        r = subprocess.run(
            [sys.executable, "-m", "mtlsdemo", "tour", "--non-interactive", "--markdown"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode != 0:
            raise SystemExit(f"tour failed:\n{r.stderr}")
        # the ports of this run mean nothing to a reader: show `make run`'s defaults
        text = r.stdout
        for name, default in (("ledger", 50051), ("gateway", 50052)):
            text = text.replace(f"127.0.0.1:{ports[name]}", f"127.0.0.1:{default}")
        return text
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mtlsdemo-walkthrough-") as tmp:
        DOC.write_text(tour_markdown(Path(tmp)))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
