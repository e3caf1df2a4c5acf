"""``mtlsdemo agent`` as a process: the Workload API sockets, an admin port
(/status, /metrics, /healthz) and a clean stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mtlsdemo.agent.config import AgentConfig, AgentConfigError
from mtlsdemo.agent.server import Agent

log = logging.getLogger(__name__)


def _admin_app(agent: Agent) -> web.Application:
    # the admin listens before the first SVIDs exist: until then every path but
    # /metrics answers 503
    def not_yet() -> web.Response:  # a new one each time: aiohttp sends a Response once
        return web.Response(status=503, text="issuing the first SVIDs\n")

    async def status(_r: web.Request) -> web.Response:
        if not agent.rotations:
            return not_yet()
        body = json.dumps(agent.status(), indent=2) + "\n"
        return web.Response(text=body, content_type="application/json")

    async def metrics(_r: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_r: web.Request) -> web.Response:
        return web.Response(text="ok\n") if agent.rotations else not_yet()

    async def own_bundle(_r: web.Request) -> web.Response:
        if not agent.rotations:
            return not_yet()
        # the bundle endpoint: federated domains fetch this. The spec serves it over
        # TLS (https_web or https_spiffe); on loopback here its integrity is the host's
        return web.Response(body=agent.own_bundle(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/bundle", own_bundle)
    return app


async def serve(config: AgentConfig) -> None:
    agent = Agent(config)
    runner: web.AppRunner | None = None
    if config.admin_listen is not None:  # first: a port in use stops us before any socket
        runner = web.AppRunner(_admin_app(agent), access_log=None)
        await runner.setup()
        host, port = config.admin_listen
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:
            await runner.cleanup()
            raise AgentConfigError(
                f"--admin-listen {host}:{port}: cannot listen: {e.strerror}"
            ) from None
        log.info("admin on http://%s:%d (/status /metrics /healthz /bundle)", host, port)
    try:
        await agent.start()
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        raise
    log.info(
        "agent ready: %d workload(s), SVIDs live %s, renewed at half-life",
        len(config.workloads),
        config.ttl,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # POSIX only, as the sidecar's
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await agent.stop()


def run(config: AgentConfig) -> int:
    asyncio.run(serve(config))
    return 0
