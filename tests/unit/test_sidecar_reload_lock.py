"""A sidecar whose identity directory's lock is held by someone else keeps
serving: its reload waits (bounded) on a worker thread, never on the event loop
that carries the data path, /healthz and the admin port."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import threading
from pathlib import Path

from mtlsdemo.pki import files as files_mod
from mtlsdemo.pki.files import LOCK_FILE, writing
from mtlsdemo.sidecar.config import SidecarConfig
from mtlsdemo.sidecar.server import Sidecar


def test_a_held_lock_never_stops_the_sidecars_loop(
    tmp_path: Path, pki_dir: Path, monkeypatch
) -> None:
    live = tmp_path / "gateway"
    with writing([live]):
        for f in ("tls.crt", "tls.key", "ca.crt"):
            shutil.copy(pki_dir / "gateway" / f, live / f)
    monkeypatch.setattr(files_mod, "LOCK_WAIT", 30.0)
    waiting = threading.Event()
    waited_on: list[threading.Thread] = []

    def pause() -> None:
        waited_on.append(threading.current_thread())
        waiting.set()
        threading.Event().wait(files_mod.LOCK_POLL)

    monkeypatch.setattr(files_mod, "_pause", pause)

    async def scenario() -> int:
        sidecar = Sidecar(
            SidecarConfig(
                identity_dir=live,
                inbound_listen=("127.0.0.1", 0),
                inbound_target=("127.0.0.1", 9),
                admin_listen=None,
                reload_interval=0.01,
            )
        )
        await sidecar.start()
        fd = os.open(live / LOCK_FILE, os.O_RDONLY)
        ticks = 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            (live / "tls.crt").touch()  # the reload now has something to read
            os.utime(live / "tls.crt", ns=(1, 1))
            # each await is a round trip through the loop: none completes if the
            # reload holds the loop while it waits on the lock
            assert await asyncio.to_thread(waiting.wait, 10), "the reload never waited"
            for _ in range(20):
                await asyncio.to_thread(waiting.wait, 1)
                ticks += 1
            assert sidecar.identity.source.last_error is None  # still waiting, not given up
        finally:
            os.close(fd)
            await sidecar.shutdown()
        return ticks

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == 20
    assert waited_on and all(t is not threading.main_thread() for t in waited_on)
