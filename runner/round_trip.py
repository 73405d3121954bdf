"""A simulated network round trip between a sample and its database.

On a local socket a query's answer arrives in microseconds, so a comparison of
sequential and concurrent queries measures CPU, not waiting; with a network in
between (the book's setting) every request pays a round trip, and concurrency is
what overlaps them. The runner can put that round trip back: the sandbox's child
hands what each database connection receives to asyncpg `delay` seconds late.

One timer chain per connection: arrivals wait in a queue in order and a single
timer delivers those whose time has come, then sets itself for the next. Timers
per chunk would be free to fire in any order when their deadlines tie.

The sandbox's child imports this module: it stays light (asyncio only).
"""

from __future__ import annotations

import asyncio
import selectors
from collections import deque
from collections.abc import Callable
from typing import Any

ROUND_TRIPS_MS: tuple[float, ...] = (0, 0.1, 0.25)
"""The round trips a run may ask for, in milliseconds: the one place they are defined."""
SLACK = 1e-6
"""A timer may fire a hair before its deadline (the loop's clock resolution): count that as due."""


class DelayedDelivery(asyncio.Protocol):
    """Stands between a transport and its protocol: what arrives is passed on `delay` seconds later, in order.

    Sending is not delayed; the answer to a request comes back one full round trip
    after it would have, which is what a request/response protocol feels.
    """

    def __init__(self, inner: asyncio.Protocol, delay: float, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.delay = delay
        self.loop = loop
        self.transport: asyncio.BaseTransport | None = None
        self._queue: deque[tuple[float, Callable[[], Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    # -- what the transport calls --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._later(lambda: self.inner.data_received(data))

    def eof_received(self) -> bool:
        self._later(self._deliver_eof)
        return True  # keep the transport open until the protocol has seen the end itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._later(lambda: self.inner.connection_lost(exc))

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- the timer chain -----------------------------------------------------------------------------

    def _later(self, deliver: Callable[[], Any]) -> None:
        self._queue.append((self.loop.time() + self.delay, deliver))
        if self._timer is None:
            self._timer = self.loop.call_at(self._queue[0][0], self._flush)

    def _flush(self) -> None:
        """Deliver everything that is due, oldest first, then wait for the next arrival's time."""
        self._timer = None
        now = self.loop.time() + SLACK
        while self._queue and self._queue[0][0] <= now:
            _, deliver = self._queue.popleft()
            deliver()
        if self._queue:
            self._timer = self.loop.call_at(self._queue[0][0], self._flush)

    def _deliver_eof(self) -> None:
        keep_open = self.inner.eof_received()
        if not keep_open and self.transport is not None:
            self.transport.close()  # what the transport would have done had the protocol said so at once


class PreciseTimers(asyncio.DefaultEventLoopPolicy):
    """Event loops whose timers keep sub-millisecond time.

    An epoll loop waits in whole milliseconds, rounded up, so a 0.5 ms delay would
    last 1 ms; select() waits in microseconds. A sandbox holds few descriptors (its
    open-files limit is far below select's 1024), so select() costs nothing here.
    """

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(selectors.SelectSelector())


def delayed(factory: Callable[[], Any], delay: float, loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """A protocol factory whose protocols receive `delay` seconds late; `unwrap` gives the real one back."""
    return lambda: DelayedDelivery(factory(), delay, loop)


def unwrap(protocol: Any) -> Any:
    return protocol.inner if isinstance(protocol, DelayedDelivery) else protocol
