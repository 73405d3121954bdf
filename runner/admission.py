"""Who runs next: run slots shared fairly between clients, and a budget of run time per client.

A slot is a run executing. Each client may hold at most `per_client` slots and keep
at most `client_queue` runs waiting; when a slot frees, the clients with waiting runs
are served in turn (round robin), so a client with many queued runs delays another
client's first run by one hand-over at most. Each client also has a budget of
run-seconds per minute, charged when its runs finish: long runs count for what they
take, not as one request.

A burst (a room pressing Run at once) waits in the queue when its expected wait is
short; the runner refuses (429 `busy`) only when the wait would pass `max_wait`, or
the queue its hard bound. A waiting run is told its place in line as it moves up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable
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


@dataclass(eq=False)
class Ticket:
    """One request's claim on a slot: granted at once, or waiting in line."""

    client: str
    waiter: asyncio.Future[None] | None = None
    """None when the slot was granted at once; otherwise done when it is granted."""
    order: int = 0
    """Arrival order among waiting tickets: the place in line is counted from it."""

    @property
    def granted(self) -> bool:
        return self.waiter is None or (self.waiter.done() and not self.waiter.cancelled())


class Admission:
    def __init__(
        self,
        slots: int,
        max_queue: int,
        share: Share,
        clock: Callable[[], float] = time.monotonic,
        on_refusal: Callable[[str], None] | None = None,
        max_wait: float = float("inf"),
    ) -> None:
        if slots < 1:
            raise ValueError("at least one run slot is needed")
        self.slots = slots
        self.max_queue = max_queue
        self.max_wait = max_wait
        """Seconds a new run may expect to wait in line; beyond it the runner answers 429 `busy`."""
        self.share = share
        self.clock = clock
        self.on_refusal = on_refusal
        self.running = 0
        self.waiting = 0
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._recent_run_seconds = 1.0
        self._recent_held_seconds = 1.0
        """A slot's recent holding time (setup and run): what the queue moves by."""
        self._grants = 0
        self._arrivals = 0
        self._line: dict[asyncio.Future[None], int] = {}
        """Every waiting run's arrival order."""
        self._moved: asyncio.Future[None] | None = None
        """Done when the line moves (someone is granted or leaves): waiting runs then learn their new place."""

    # -- admission -------------------------------------------------------------------------------

    async def acquire(self, client: str) -> None:
        """Wait for a slot for `client`; raises Refused (a 429) when its share is full or the wait too long."""
        ticket = self.enqueue(client)
        if ticket.waiter is None:
            return
        try:
            await ticket.waiter
        except BaseException:
            self.abandon(ticket)
            raise

    def enqueue(self, client: str) -> Ticket:
        """A slot for `client` now, or a place in line; raises Refused (a 429) before anything waits."""
        state = self._client(client)
        self._check_budget(client, state)
        # waiters left while slots are free are waiting on their own client's share: they do not block others
        if self.running < self.slots and state.running < self.share.per_client and not state.waiting:
            self._grant(client, state)
            return Ticket(client)
        if len(state.waiting) >= self.share.client_queue:
            self._refuse(
                client,
                "client_queue_full",
                f"you already have {len(state.waiting)} run(s) waiting and {state.running} running; "
                "wait for them to finish",
                self._recent_run_seconds,
            )
        wait = self.expected_wait()
        if self.waiting >= self.max_queue or wait > self.max_wait:
            self._refuse(client, "busy", f"the runner is busy (the wait would be about {wait:.0f} s)", wait)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiting.append(waiter)
        self.waiting += 1
        self._arrivals += 1
        self._line[waiter] = self._arrivals
        return Ticket(client, waiter, self._arrivals)

    async def wait(self, ticket: Ticket) -> AsyncGenerator[int, None]:
        """Yield the ticket's place in line (1: next) whenever it changes, until the slot is granted.

        A caller that goes away (cancelled, or closing the iterator) leaves the line; one
        whose slot was granted meanwhile gives the slot on. Once the iteration ends, the
        slot is the caller's to release.
        """
        waiter = ticket.waiter
        if waiter is None:
            return
        try:
            place = 0
            while not waiter.done():
                now = self.place(ticket)
                if now != place:
                    place = now
                    yield place
                    continue  # the line may have moved while the caller was away: look again
                if self._moved is None or self._moved.done():
                    self._moved = asyncio.get_running_loop().create_future()
                await asyncio.wait((waiter, self._moved), return_when=asyncio.FIRST_COMPLETED)
            waiter.result()
        except BaseException:
            self.abandon(ticket)
            raise
        ticket.waiter = None  # granted and handed over: abandoning it now is a no-op

    def expected_wait_at(self, place: int) -> float:
        """Roughly how long the run at `place` in line waits: the runs up to it times a slot's holding time."""
        return place / self.slots * self._recent_held_seconds

    def abandon(self, ticket: Ticket) -> None:
        """The ticket's request went away: leave the line, or give on a slot granted meanwhile."""
        waiter = ticket.waiter
        if waiter is None:
            return
        state = self._client(ticket.client)
        if waiter.done() and not waiter.cancelled():
            ticket.waiter = asyncio.get_running_loop().create_future()  # abandon once only
            ticket.waiter.cancel()
            self.release(ticket.client, 0.0)  # granted, then abandoned: give the slot on
        elif waiter in state.waiting:
            waiter.cancel()
            state.waiting.remove(waiter)
            self._line.pop(waiter, None)
            self.waiting -= 1
            self._notify_moved()

    def place(self, ticket: Ticket) -> int:
        """1 + the runs waiting that arrived before this one (the line's order; fair share may reorder it)."""
        return 1 + sum(1 for order in self._line.values() if order < ticket.order)

    def release(self, client: str, run_seconds: float, held_seconds: float | None = None) -> None:
        """A run of `client` ended after `run_seconds` (held its slot `held_seconds`): charge it, hand the slot on."""
        state = self._client(client)
        state.running -= 1
        self.running -= 1
        state.budget -= run_seconds
        if run_seconds > 0:
            self._recent_run_seconds = 0.8 * self._recent_run_seconds + 0.2 * run_seconds
        held = run_seconds if held_seconds is None else held_seconds
        if held > 0:
            self._recent_held_seconds = 0.8 * self._recent_held_seconds + 0.2 * held
        self._dispatch()
        self._forget_idle()

    def expected_wait(self) -> float:
        """Roughly how long a new arrival would wait."""
        return self.expected_wait_at(self.waiting + 1)

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
            self._line.pop(waiter, None)
            self.waiting -= 1
            self._grant(client, state)
            waiter.set_result(None)
            self._notify_moved()

    def _notify_moved(self) -> None:
        if self._moved is not None and not self._moved.done():
            self._moved.set_result(None)

    def _forget_idle(self) -> None:
        if len(self._clients) <= 1000:
            return
        full = self.share.run_seconds_per_minute
        for client in [c for c, s in self._clients.items() if not s.running and not s.waiting and s.budget >= full]:
            del self._clients[client]
