"""``/healthz`` and ``/metrics`` for operators, served by the bot process with aiohttp.

Off unless ``TRAINERBOT_METRICS_PORT`` is set; binds ``TRAINERBOT_METRICS_HOST``
(127.0.0.1 by default — put a reverse proxy or the scraper on the same host).

- ``GET /healthz``: 200 when the store answers, the bot is connected (Discord's gateway, or
  the console is running) and — when this process runs its own training worker — a worker
  beat within the last 30 s; 503 otherwise. The JSON body says which check failed.
- ``GET /metrics``: the Prometheus text format (``ops.metrics``), the store's numbers read
  at scrape time.

Nothing here blocks the event loop: store reads run in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from trainerbot.ops.metrics import REGISTRY, StoreCollector

log = logging.getLogger(__name__)


class OpsServer:
    """``connected`` says whether the front end is up: ``(name, ok)``, e.g. ``("gateway", True)``."""

    def __init__(self, store: Any, *, host: str, port: int, connected: Callable[[], tuple[str, bool]],
                 worker_expected: bool) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.connected = connected
        self.worker_expected = worker_expected
        self._store_registry = CollectorRegistry(auto_describe=False)
        self._store_registry.register(StoreCollector(store))
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Start serving; returns the port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port bound (the one asked for, or a free one for 0)
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _check(self) -> dict[str, Any]:
        from sqlalchemy import text

        from trainerbot.training import queue

        report: dict[str, Any] = {}
        try:
            with self.store.read() as s:
                s.execute(text("select 1"))
            seen = queue.workers(self.store)
            report["store"] = {"ok": True}
            worker_ok = seen.alive > 0 or not self.worker_expected
            report["worker"] = {
                "ok": worker_ok,
                "alive": seen.alive,
                "expected": self.worker_expected,
                "jobs_waiting": seen.waiting,
                "heartbeat_age_s": round(seen.silent_for_s, 1) if seen.silent_for_s is not None else None,
            }
        except Exception as exc:  # the store is down: say so, without its URL or password
            report["store"] = {"ok": False, "error": type(exc).__name__}
            report["worker"] = {"ok": False, "error": "store unreachable"}
        return report

    async def healthz(self, request: web.Request) -> web.Response:
        report = await asyncio.to_thread(self._check)
        name, ok = self.connected()
        report[name] = {"ok": ok}
        healthy = all(part.get("ok") for part in report.values())
        report = {"status": "ok" if healthy else "unhealthy", **report}
        return web.json_response(report, status=200 if healthy else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        def render() -> bytes:
            own = generate_latest(REGISTRY)
            try:
                return own + generate_latest(self._store_registry)
            except Exception:  # the store is down: the process's own numbers still count
                log.warning("store metrics unavailable", exc_info=True)
                return own

        body = await asyncio.to_thread(render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
