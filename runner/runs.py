"""Runs: admission, the queue, one sandbox per run, the summary and the log line.

Admission happens before any response is sent, so a full queue is a 429 and a
database that is down is a 503; once a sandbox is in hand the run streams.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .errors import Busy, PostgresUnavailable
from .events import Event
from .pool import SandboxPool
from .sandbox import Job, Outcome, Sandbox, SandboxFailed
from .settings import Settings
from .snippets import Snippet

log = logging.getLogger("runner.runs")


class Unavailable(errors.SandboxFailed):
    """A sandbox could not be prepared (the database is down, or the child failed)."""


@dataclass
class Run:
    """One admitted run holding a slot and a sandbox; iterate `events()` exactly once."""

    service: RunService
    snippet: Snippet
    code: str
    edited: bool
    sandbox: Sandbox
    queued_at: float
    admitted_at: float
    ready_at: float
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    outcome: Outcome = field(default_factory=Outcome)
    output: list[Event] = field(default_factory=list)
    timings: list[Event] = field(default_factory=list)
    queries: dict[str, Any] | None = None
    started: bool = False
    finished_at: float | None = None

    async def events(self) -> AsyncIterator[Event]:
        job = Job(
            code=self.code,
            filename=self.snippet.path,
            timeout=self.service.settings.run_timeout,
            output_limit=self.service.settings.output_limit,
        )
        self.started = True
        yield {"event": "started", "id": self.id, "snippet": self.snippet.id}
        try:
            async for event in self.sandbox.execute(job, self.outcome):
                if event["event"] == "output":
                    self.output.append(event)
                elif event["event"] == "timing":
                    self.timings.append(event)
                elif event["event"] == "queries":
                    self.queries = {k: v for k, v in event.items() if k != "event"}
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            self.outcome.status = "cancelled"
            self.outcome.reason = "the client went away"
            raise
        finally:
            self.close()
        yield {"event": "finished", **self.summary(include_streams=False)}

    def close(self) -> None:
        """Give back the slot and the sandbox; idempotent, and safe if events() never started."""
        if self.finished_at is not None:
            return
        if not self.started:
            self.outcome.status, self.outcome.reason = "cancelled", "the client went away before the run"
        self.finished_at = time.perf_counter()
        self.service.finish(self)

    def summary(self, include_streams: bool = True) -> dict[str, Any]:
        end = self.finished_at or time.perf_counter()
        summary: dict[str, Any] = {
            "id": self.id,
            "snippet": self.snippet.id,
            "edited": self.edited,
            "status": self.outcome.status,
            "exit_code": self.outcome.exit_code,
            "reason": self.outcome.reason,
            "truncated": self.outcome.truncated,
            "duration": {
                "queue": round(self.admitted_at - self.queued_at, 4),
                "setup": round(self.ready_at - self.admitted_at, 4),
                "run": round(self.outcome.run_seconds, 4),
                "total": round(end - self.queued_at, 4),
            },
        }
        if include_streams:
            summary["output"] = self.output
            summary["timings"] = self.timings
            summary["queries"] = self.queries
        return summary


class RunService:
    def __init__(self, settings: Settings, pool: SandboxPool) -> None:
        self.settings = settings
        self.pool = pool
        self._slots = asyncio.Semaphore(settings.max_concurrent_runs)
        self.waiting = 0
        self.running = 0
        self._recent_run_seconds = 1.0
        self.counts: dict[str, int] = {}
        self.on_finish: list[Callable[[Run], None]] = []

    async def start(self, snippet: Snippet, code: str | None) -> Run:
        """Wait for a slot and a sandbox; raises Busy or Unavailable before anything is sent."""
        if self.waiting >= self.settings.max_queue:
            raise Busy(self.retry_after())
        queued_at = time.perf_counter()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        admitted_at = time.perf_counter()
        try:
            sandbox = await self.pool.take()
        except (PostgresUnavailable, SandboxFailed, OSError) as error:
            self._slots.release()
            raise Unavailable(str(error)) from error
        except BaseException:
            self._slots.release()
            raise
        self.running += 1
        edited = code is not None and code != snippet.code
        return Run(
            self,
            snippet,
            code if code is not None else snippet.code,
            edited,
            sandbox,
            queued_at,
            admitted_at,
            time.perf_counter(),
        )

    def finish(self, run: Run) -> None:
        self.running -= 1
        self._slots.release()
        self.pool.release(run.sandbox)
        self.counts[run.outcome.status] = self.counts.get(run.outcome.status, 0) + 1
        for callback in self.on_finish:
            callback(run)
        self._recent_run_seconds = 0.8 * self._recent_run_seconds + 0.2 * run.outcome.run_seconds
        d = run.summary(include_streams=False)["duration"]
        log.info(
            "run %s snippet=%s%s status=%s exit=%s queue=%.3fs setup=%.3fs run=%.3fs total=%.3fs db=%s%s",
            run.id,
            run.snippet.id,
            " (edited)" if run.edited else "",
            run.outcome.status,
            run.outcome.exit_code,
            d["queue"],
            d["setup"],
            d["run"],
            d["total"],
            run.sandbox.database.name,
            f" reason={run.outcome.reason!r}" if run.outcome.reason else "",
        )

    def retry_after(self) -> int:
        """Roughly how long until the queue drains: waiting runs times a recent run's length."""
        per_slot = (self.waiting + 1) / max(1, self.settings.max_concurrent_runs)
        return max(1, round(per_slot * self._recent_run_seconds))


async def collect(run: Run) -> dict[str, Any]:
    """Run to the end and return the JSON summary (the non-streaming answer)."""
    async for _ in run.events():
        pass
    return run.summary()
