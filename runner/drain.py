"""Graceful restarts: on SIGTERM, drain (health 503, no new runs, running runs finish), then stop.

uvicorn's own handling of SIGTERM stops at once and cuts streams after a few
seconds, before a proxy has even seen health turn 503. This server takes the
signal itself: it marks the runtime draining, waits for the runs in progress (up
to the grace period), and only then lets uvicorn close. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from .runtime import Runtime

log = logging.getLogger("runner.drain")

TAIL_SECONDS = 5
"""After the drain, how long uvicorn waits for responses still being written (a run's last line)."""


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime, grace: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.grace = grace
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First SIGTERM/SIGINT: drain; a second one: stop now. The signal is not re-raised (exit 0)."""
        if self._drain is not None or self._loop is None or self.should_exit:
            log.warning("signal %s again: stopping without waiting for runs", signal.Signals(sig).name)
            self.should_exit = True
            self.force_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain, sig)

    def _start_drain(self, sig: int) -> None:
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_then_exit(sig))

    async def _drain_then_exit(self, sig: int) -> None:
        log.info(
            "%s: draining (health 503, no new runs); waiting up to %g s for %d running run(s)",
            signal.Signals(sig).name,
            self.grace,
            self.runtime.service.running if self.runtime.service else 0,
        )
        finished = await self.runtime.drain(self.grace)
        if finished:
            log.info("drained: no run in progress; stopping")
        else:
            running = self.runtime.service.running if self.runtime.service else 0
            log.warning("grace period of %g s over with %d run(s) still running; stopping them", self.grace, running)
        self.should_exit = True


def serve(app: object, runtime: Runtime, host: str, port: int, log_level: str, grace: float) -> None:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=TAIL_SECONDS,
        log_config=None,
    )
    DrainingServer(config, runtime, grace).run()
