"""The one way from a sandbox to a client: bounded in bytes, in buffered events, and in patience.

Everything a sample can send (stdout, stderr, events) is charged here, before it is
queued, against one output budget, at the size it will have on the wire (JSON
escapes included). The queue holds a few events only: when the client reads slowly
the pumps wait, the pipes fill and the child blocks; when it does not read for
`stall` seconds the run is stopped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Literal

import pydantic_core

from .models import OutputEvent, QueriesEvent, RunEvent, Status, TimingEvent


class Stopped(Exception):
    """A verdict that ends the run: why, in words for the reader."""

    def __init__(self, status: Status, reason: str, truncated: bool = False) -> None:
        super().__init__(reason)
        self.status: Status = status
        self.reason = reason
        self.truncated = truncated


def wire_size(text: str) -> int:
    """Bytes `text` takes inside a JSON line (escapes included, quotes not)."""
    return len(pydantic_core.to_json(text)) - 2


def describe_limit(limit: int) -> str:
    return f"{limit / 1024:g} KiB" if limit % 1024 == 0 or limit > 10240 else f"{limit} bytes"


class Channel:
    def __init__(self, budget: int, maxsize: int = 16, stall: float = 10.0) -> None:
        self.limit = budget
        self.remaining = budget
        self.maxsize = maxsize
        self.stall = stall
        self._items: deque[RunEvent] = deque()
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def _over_budget(self) -> Stopped:
        self.remaining = 0
        return Stopped("killed", f"output limit of {describe_limit(self.limit)} reached", truncated=True)

    async def put_output(self, stream: Literal["stdout", "stderr"], text: str, t: float) -> None:
        size = wire_size(text)
        if size > self.remaining:
            low, high = 0, min(len(text), self.remaining)  # the longest prefix that fits
            while low < high:
                middle = (low + high + 1) // 2
                if wire_size(text[:middle]) <= self.remaining:
                    low = middle
                else:
                    high = middle - 1
            cut = text[:low]
            if cut:
                await self._put(OutputEvent(stream=stream, text=cut, t=round(t, 4)))
            raise self._over_budget()
        self.remaining -= size
        await self._put(OutputEvent(stream=stream, text=text, t=round(t, 4)))

    async def put_event(self, event: TimingEvent | QueriesEvent, size: int) -> None:
        if size > self.remaining:
            raise self._over_budget()
        self.remaining -= size
        await self._put(event)

    async def _put(self, item: RunEvent) -> None:
        try:
            async with asyncio.timeout(self.stall):
                while len(self._items) >= self.maxsize:
                    self._writable.clear()
                    await self._writable.wait()
        except TimeoutError:
            raise Stopped("killed", f"stopped: the output was not read for {self.stall:g} s") from None
        self._items.append(item)
        self._readable.set()

    def close(self) -> None:
        """No more items will come; readers get what is queued, then the end."""
        self._closed = True
        self._readable.set()

    def __aiter__(self) -> Channel:
        return self

    async def __anext__(self) -> RunEvent:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        self._writable.set()
        return item
