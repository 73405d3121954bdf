"""Who runs next: run slots shared fairly between clients, and a budget of run time per client.

A slot is a run executing. Each client may hold at most `per_client` slots and keep
at most `client_queue` runs waiting; when a slot frees, the clients with waiting runs
are served in turn (round robin), so a client with many queued runs delays another
client's first run by one hand-over at most. Each client also has a budget of
run-seconds per minute, charged when its runs finish: long runs count for what they
take, not as one request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import Refused

log = logging.getLogger("runner.admission")


@dataclass(frozen=True)
class Share:
    """What one client may take."""

    per_client: int
    """Runs of one client executing at once."""
    client_queue: int
    """Runs of one client waiting for a slot."""
    run_seconds_per_minute: float
    """Run time one client may use per minute (0: unlimited)."""


@dataclass
class _Client:
    served: int = -1
    """When this client was last given a slot (a counter; -1: never): the least recently served goes next."""
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    budget: float = 0.0
    refilled_at: float = 0.0


class Admission:
    def __init__(
        self,
        slots: int,
        max_queue: int,
        share: Share,
        clock: Callable[[], float] = time.monotonic,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("at least one run slot is needed")
        self.slots = slots
        self.max_queue = max_queue
        self.share = share
        self.clock = clock
        self.on_refusal = on_refusal
        self.running = 0
        self.waiting = 0
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._recent_run_seconds = 1.0
        self._grants = 0

    # -- admission -------------------------------------------------------------------------------

    async def acquire(self, client: str) -> None:
        """Wait for a slot for `client`; raises Refused (a 429) when its share or the queue is full."""
        state = self._client(client)
        self._check_budget(client, state)
        # waiters left while slots are free are waiting on their own client's share: they do not block others
        if self.running < self.slots and state.running < self.share.per_client and not state.waiting:
            self._grant(client, state)
            return
        if len(state.waiting) >= self.share.client_queue:
            self._refuse(
                client,
                "client_queue_full",
                f"you already have {len(state.waiting)} run(s) waiting and {state.running} running; "
                "wait for them to finish",
                self._recent_run_seconds,
            )
        if self.waiting >= self.max_queue:
            self._refuse(client, "busy", "the runner is busy", self.expected_wait())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiting.append(waiter)
        self.waiting += 1
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(client, 0.0)  # granted, then abandoned: give the slot on
            elif waiter in state.waiting:
                state.waiting.remove(waiter)
                self.waiting -= 1
            raise

    def release(self, client: str, run_seconds: float) -> None:
        """A run of `client` ended after `run_seconds`: charge its budget and hand the slot on."""
        state = self._client(client)
        state.running -= 1
        self.running -= 1
        state.budget -= run_seconds
        if run_seconds > 0:
            self._recent_run_seconds = 0.8 * self._recent_run_seconds + 0.2 * run_seconds
        self._dispatch()
        self._forget_idle()

    def expected_wait(self) -> float:
        """Roughly how long until the queue drains: waiting runs times a recent run's length."""
        return (self.waiting + 1) / self.slots * self._recent_run_seconds

    # -- internals -------------------------------------------------------------------------------

    def _client(self, client: str) -> _Client:
        state = self._clients.get(client)
        if state is None:
            now = self.clock()
            state = self._clients[client] = _Client(budget=self.share.run_seconds_per_minute, refilled_at=now)
        return state

    def _check_budget(self, client: str, state: _Client) -> None:
        per_minute = self.share.run_seconds_per_minute
        if per_minute <= 0:
            return
        now = self.clock()
        state.budget = min(per_minute, state.budget + (now - state.refilled_at) * per_minute / 60)
        state.refilled_at = now
        if state.budget <= 0:
            wait = -state.budget * 60 / per_minute + 1
            self._refuse(
                client,
                "run_time_budget",
                f"your runs used their {per_minute:g} s of run time for this minute",
                wait,
            )

    def _refuse(self, client: str, reason: str, detail: str, retry_after: float) -> None:
        log.info("client %s refused (%s): %s", client, reason, detail)
        if self.on_refusal is not None:
            self.on_refusal(reason)
        refusal = Refused(f"{detail}; retry in {max(1, round(retry_after + 0.49))} s", retry_after, code=reason)
        raise refusal

    def _grant(self, client: str, state: _Client) -> None:
        state.running += 1
        self.running += 1
        self._grants += 1
        state.served = self._grants  # to the back of the round

    def _dispatch(self) -> None:
        while self.running < self.slots:
            eligible = [
                (state.served, client)
                for client, state in self._clients.items()
                if state.waiting and state.running < self.share.per_client
            ]
            if not eligible:
                return
            _, client = min(eligible, key=lambda entry: entry[0])  # min() keeps the first of equals: arrival order
            state = self._clients[client]
            waiter = state.waiting.popleft()
            self.waiting -= 1
            self._grant(client, state)
            waiter.set_result(None)

    def _forget_idle(self) -> None:
        if len(self._clients) <= 1000:
            return
        full = self.share.run_seconds_per_minute
        for client in [c for c, s in self._clients.items() if not s.running and not s.waiting and s.budget >= full]:
            del self._clients[client]
