"""Runs: admission, the queue, one sandbox per run, the summary and the log line.

Admission happens before any response is sent, so a full queue is a 429 and a
database that is down is a 503; once a sandbox is in hand the run streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .admission import Admission, Ticket
from .changes import DatabaseChanges, after_run
from .databases import DatabaseFactory
from .errors import PostgresUnavailable, SandboxFailed, as_clone_space_full
from .exercises import exercise_of, judge, result_record
from .models import (
    CheckEvent,
    CheckVerdict,
    Duration,
    FinishedEvent,
    Network,
    OutputEvent,
    QueriesEvent,
    QueryActivity,
    QueuedEvent,
    Resources,
    RunEvent,
    RunResult,
    RunSummary,
    StartedEvent,
    TimingEvent,
    dump,
)
from .pool import SandboxPool
from .sandbox import Job, Outcome, Sandbox
from .settings import Settings
from .snippets import Snippet
from .wire import WireRecord

log = logging.getLogger("runner.runs")


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
    client: str = "local"
    round_trip_ms: float = 0
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    outcome: Outcome = field(default_factory=Outcome)
    output: list[OutputEvent] = field(default_factory=list)
    timings: list[TimingEvent] = field(default_factory=list)
    queries: QueryActivity | None = None
    changes: DatabaseChanges | None = None
    check: CheckVerdict | None = None
    started: bool = False
    finished_at: float | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the answer has gone out: the sandbox's clean-up and the pool's refill wait for it (briefly)."""

    async def mark_answered(self) -> None:
        """`answered.set`, as a coroutine function: a response's background task, run on the event loop."""
        self.answered.set()

    async def events(self) -> AsyncIterator[RunEvent]:
        exercise = exercise_of(self.snippet)
        record = WireRecord() if exercise is not None else None
        job = Job(
            code=self.code,
            filename=self.snippet.path,
            timeout=self.service.settings.run_timeout,
            output_limit=self.service.settings.output_limit,
            record=record,
            round_trip_ms=self.round_trip_ms,
        )
        self.started = True
        if exercise is not None:
            self.sandbox.warm_checker()
        yield StartedEvent(id=self.id, snippet=self.snippet.id)
        try:
            async for event in self.sandbox.execute(job, self.outcome):
                if isinstance(event, OutputEvent):
                    self.output.append(event)
                elif isinstance(event, TimingEvent):
                    self.timings.append(event)
                elif isinstance(event, QueriesEvent):
                    self.queries = QueryActivity(**event.model_dump(exclude={"event"}))
                yield event
            # before close(): the release that follows drops the database
            databases = self.service.pool.env.databases
            if record is not None and isinstance(databases, DatabaseFactory):
                await databases.terminate_backends(self.sandbox.database.name)  # nothing of the run's goes on
            if isinstance(databases, DatabaseFactory):
                if exercise is None and not self.sandbox.tapping.granted:
                    self.changes = DatabaseChanges()  # no connection was ever made: nothing to read
                else:
                    self.changes = await after_run(databases, self.sandbox.database.name, full=exercise is not None)
            if exercise is not None and record is not None:
                result = result_record(self.outcome, self.output, self.timings, record)
                self.check = await judge(exercise, self.sandbox, record, result, job.limits, self.changes)
                yield CheckEvent(**self.check.model_dump())
        except (asyncio.CancelledError, GeneratorExit):
            self.outcome.status = "cancelled"
            self.outcome.reason = "the client went away"
            raise
        finally:
            self.close()
        yield FinishedEvent(**self.result().model_dump())

    def close(self) -> None:
        """Give back the slot and the sandbox; idempotent, and safe if events() never started."""
        if self.finished_at is not None:
            return
        if not self.started:
            self.outcome.status, self.outcome.reason = "cancelled", "the client went away before the run"
        self.finished_at = time.perf_counter()
        self.service.finish(self)

    def result(self) -> RunResult:
        end = self.finished_at or time.perf_counter()
        return RunResult(
            id=self.id,
            snippet=self.snippet.id,
            edited=self.edited,
            status=self.outcome.status,
            exit_code=self.outcome.exit_code,
            reason=self.outcome.reason,
            truncated=self.outcome.truncated,
            duration=Duration(
                queue=round(self.admitted_at - self.queued_at, 4),
                setup=round(self.ready_at - self.admitted_at, 4),
                run=round(self.outcome.run_seconds, 4),
                total=round(end - self.queued_at, 4),
            ),
            resources=None
            if self.outcome.memory_peak is None or self.outcome.cpu_seconds is None
            else Resources(memory_peak_bytes=self.outcome.memory_peak, cpu_seconds=round(self.outcome.cpu_seconds, 4)),
            changes=self.changes,
            check=self.check,
            network=Network(round_trip_ms=self.round_trip_ms),
        )

    def summary(self) -> RunSummary:
        return RunSummary(**self.result().model_dump(), output=self.output, timings=self.timings, queries=self.queries)


class RunService:
    """Admits runs (fairly between clients), hands each a sandbox, and accounts for how they ended."""

    def __init__(self, settings: Settings, pool: SandboxPool, admission: Admission | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.admission = admission or Admission(
            settings.max_concurrent_runs, settings.max_queue, settings.share(), max_wait=settings.max_wait
        )
        self.on_finish: list[Callable[[Run], None]] = []

    @property
    def running(self) -> int:
        return self.admission.running

    @property
    def waiting(self) -> int:
        return self.admission.waiting

    async def start(
        self,
        snippet: Snippet,
        code: str | None,
        client: str = "local",
        ticket: Ticket | None = None,
        queued_at: float | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Wait for a slot (unless `ticket` holds one) and a sandbox; raises Refused or ServiceUnavailable."""
        queued_at = time.perf_counter() if queued_at is None else queued_at
        if ticket is None:
            await self.admission.acquire(client)
        elif not ticket.granted:
            raise RuntimeError("a run starts with a granted ticket only")  # the caller waits in line first
        admitted_at = time.perf_counter()
        try:
            sandbox = await self.pool.take()
        except (PostgresUnavailable, SandboxFailed):
            self.admission.release(client, 0.0)
            raise
        except Exception as error:
            self.admission.release(client, 0.0)
            full = as_clone_space_full(error)  # a full clone folder is a 503 of its own, never a 500
            if full is not None and full is not error:
                raise full from error
            if isinstance(error, OSError):
                raise SandboxFailed(f"cannot prepare a sandbox: {error}") from error
            raise
        except BaseException:
            self.admission.release(client, 0.0)
            raise
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
            client=client,
            id=run_id or secrets.token_hex(6),
        )

    async def wait_in_line(self, ticket: Ticket) -> AsyncIterator[QueuedEvent]:
        """The ticket's place in line as it moves up; when it ends, the slot is the caller's."""
        async with contextlib.aclosing(self.admission.wait(ticket)) as places:
            async for place in places:
                yield QueuedEvent(position=place, expected_wait=round(self.admission.expected_wait_at(place), 2))

    def finish(self, run: Run) -> None:
        held = (run.finished_at or time.perf_counter()) - run.admitted_at
        self.admission.release(run.client, run.outcome.run_seconds, held)
        self.pool.release(run.sandbox, after=run.answered)
        for callback in self.on_finish:
            callback(run)
        d = run.result().duration
        log.info(
            "run %s snippet=%s%s status=%s exit=%s queue=%.3fs setup=%.3fs run=%.3fs total=%.3fs db=%s%s",
            run.id,
            run.snippet.id,
            " (edited)" if run.edited else "",
            run.outcome.status,
            run.outcome.exit_code,
            d.queue,
            d.setup,
            d.run,
            d.total,
            run.sandbox.database.name,
            f" reason={run.outcome.reason!r}" if run.outcome.reason else "",
        )


async def collect(run: Run) -> dict[str, Any]:
    """Run to the end and return the JSON summary (the non-streaming answer)."""
    async for _ in run.events():
        pass
    return dump(run.summary())
