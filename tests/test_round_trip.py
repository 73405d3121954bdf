"""The simulated round trip: what a connection receives reaches its protocol late, whole and in order.

Fast: a fake clock for order and exact delays (its ties fire last-in first-out,
which asyncio allows, so timers per chunk would be caught), then real sockets on
a real event loop for the delay as a sample feels it, measured with bounds that fail
when the delay is missing, doubled, or rounded up to whole milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import re
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.models import RunRequest
from runner.openapi import openapi_schema
from runner.round_trip import ROUND_TRIPS_MS, DelayedDelivery, PreciseTimers, delayed, unwrap
from runner.settings import REPO_ROOT

from .test_contract import assert_envelope, post, unstarted_runtime

WIDGET = REPO_ROOT / "docs" / "assets" / "workshop-run.js"

# -- a fake clock -----------------------------------------------------------------------------------


class FakeLoop:
    """`time`, `call_at` and a hand on the clock; timers with equal deadlines fire newest first."""

    def __init__(self) -> None:
        self.now = 100.0
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []
        self._order = 0
        self.armed = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], Any]) -> Any:
        self._order -= 1  # ties: the last scheduled fires first
        self.armed += 1
        heapq.heappush(self._timers, (when, self._order, callback))
        return object()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            heapq.heappop(self._timers)[2]()

    @property
    def pending(self) -> int:
        return len(self._timers)


class Recording(asyncio.Protocol):
    def __init__(self, loop: FakeLoop, keep_open: bool = False) -> None:
        self.loop = loop
        self.keep_open = keep_open
        self.seen: list[tuple[float, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.seen.append((self.loop.now, "made"))

    def data_received(self, data: bytes) -> None:
        self.seen.append((self.loop.now, data.decode()))

    def eof_received(self) -> bool:
        self.seen.append((self.loop.now, "eof"))
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.seen.append((self.loop.now, "lost"))


class Transport(asyncio.Transport):
    closed = False

    def close(self) -> None:
        self.closed = True


def wrapped(delay: float, keep_open: bool = False) -> tuple[FakeLoop, Recording, DelayedDelivery]:
    loop = FakeLoop()
    inner = Recording(loop, keep_open)
    return loop, inner, DelayedDelivery(inner, delay, loop)  # type: ignore[arg-type]


def test_each_arrival_is_delivered_exactly_one_delay_later_in_order() -> None:
    loop, inner, proxy = wrapped(0.001)
    transport = Transport()
    proxy.connection_made(transport)
    assert inner.seen == [(100.0, "made")]  # connecting is not delayed: the handshake's messages are
    for i in range(50):  # many chunks within one delay, several at the same instant
        proxy.data_received(f"{i},".encode())
        if i % 5 == 4:
            loop.advance(0.00001)
    loop.advance(0.0005)
    assert len(inner.seen) == 1, "nothing may arrive before its delay"
    loop.advance(0.01)
    arrived = inner.seen[1:]
    assert [text for _, text in arrived] == [f"{i}," for i in range(50)]
    for i, (at, _) in enumerate(arrived):
        assert at >= 100.0 + (i // 5) * 0.00001 + 0.001 - 1e-9
    assert loop.armed <= 12, f"{loop.armed} timers for 50 chunks: one chain per connection, not one per chunk"


def test_the_end_of_the_stream_waits_behind_the_data() -> None:
    loop, inner, proxy = wrapped(0.002)
    transport = Transport()
    proxy.connection_made(transport)
    proxy.data_received(b"last rows")
    assert proxy.eof_received() is True  # the transport stays open until the protocol has seen the end
    proxy.connection_lost(None)
    assert not transport.closed
    loop.advance(0.001)
    assert [text for _, text in inner.seen] == ["made"]
    loop.advance(0.0011)
    assert [text for _, text in inner.seen] == ["made", "last rows", "eof", "lost"]
    assert transport.closed, "a protocol that does not keep a half-closed connection has it closed, as asyncio would"
    assert loop.pending == 0


def test_a_protocol_that_keeps_a_half_closed_connection_keeps_it() -> None:
    loop, _, proxy = wrapped(0.002, keep_open=True)
    transport = Transport()
    proxy.connection_made(transport)
    proxy.eof_received()
    loop.advance(0.003)
    assert not transport.closed


def test_the_wrapper_hands_back_the_real_protocol() -> None:
    loop = FakeLoop()
    inner = Recording(loop)
    made = delayed(lambda: inner, 0.001, loop)()  # type: ignore[arg-type]
    assert isinstance(made, DelayedDelivery) and unwrap(made) is inner and unwrap(inner) is inner


# -- the values offered ---------------------------------------------------------------------------


def test_the_request_offers_exactly_the_defined_round_trips() -> None:
    assert ROUND_TRIPS_MS[0] == 0 and list(ROUND_TRIPS_MS) == sorted(set(ROUND_TRIPS_MS))
    schema = RunRequest.model_json_schema()["properties"]["network_rtt_ms"]
    assert schema["enum"] == list(ROUND_TRIPS_MS) and schema["default"] == 0
    for value in ROUND_TRIPS_MS:
        assert RunRequest(snippet="a", network_rtt_ms=value).network_rtt_ms == value


def test_the_api_document_offers_them_and_every_result_says_which_was_used() -> None:
    schemas = openapi_schema()["components"]["schemas"]
    offered = schemas["RunRequest"]["properties"]["network_rtt_ms"]
    assert offered["enum"] == list(ROUND_TRIPS_MS) and offered["type"] == "number"
    assert "network_rtt_ms" not in schemas["RunRequest"].get("required", [])
    for answer in ("RunSummary", "FinishedEvent"):
        assert schemas[answer]["properties"]["network"]["$ref"] == "#/components/schemas/Network"
        assert "network" in schemas[answer]["required"]
    assert schemas["Network"]["properties"]["round_trip_ms"]["type"] == "number"


def test_the_widget_offers_the_same_round_trips() -> None:
    found = re.search(r"^const ROUND_TRIPS_MS = (\[[^\]]*\]);", WIDGET.read_text(), re.MULTILINE)
    assert found, "the widget no longer lists its round trips"
    assert json.loads(found.group(1)) == list(ROUND_TRIPS_MS)


# -- real sockets on a real loop ---------------------------------------------------------------------


async def round_trips(delay: float, count: int) -> list[float]:
    """Seconds from sending a byte to its echo reaching the protocol, `count` times in turn."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    received: asyncio.Queue[float] = asyncio.Queue()

    class Client(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.put_nowait(time.perf_counter())

    async def echo() -> None:
        while data := await loop.sock_recv(theirs, 64):
            await loop.sock_sendall(theirs, data)

    echoing = asyncio.create_task(echo())
    transport, protocol = await loop.create_unix_connection(delayed(Client, delay, loop), sock=ours)
    assert isinstance(protocol, DelayedDelivery)
    times = []
    try:
        for _ in range(count):
            sent = time.perf_counter()
            transport.write(b"q")  # type: ignore[attr-defined]
            times.append(await asyncio.wait_for(received.get(), 5) - sent)
    finally:
        echoing.cancel()
        await asyncio.gather(echoing, return_exceptions=True)
        transport.close()
        theirs.close()
    return times


def on_precise_loop(delay: float, count: int) -> list[float]:
    loop = PreciseTimers().new_event_loop()
    try:
        return loop.run_until_complete(round_trips(delay, count))
    finally:
        loop.close()


def test_every_answer_pays_the_round_trip_on_real_sockets() -> None:
    times = on_precise_loop(0.02, 10)
    assert min(times) >= 0.02, times
    assert statistics.median(times) < 0.02 + 0.01, times  # the delay, not twice it


@pytest.mark.parametrize("delay", [0.0001, 0.00025])
def test_sub_millisecond_round_trips_are_not_rounded_up_to_a_millisecond(delay: float) -> None:
    """An epoll loop would wait 1 ms for each of these; the sample's loop keeps microseconds."""
    times = on_precise_loop(delay, 200)
    assert min(times) >= delay, times[:10]
    assert statistics.median(times) < 0.0009, sorted(times)[::20]


# -- a value not offered is a 400 ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["0.3", "1", "-0.1", '"0.1"', "true", "null", "1e400"])
async def test_a_round_trip_not_offered_is_refused_in_words(tmp_path: Path, value: str) -> None:
    body = b'{"snippet": "chapter_05/04_pool_vs_sequential", "network_rtt_ms": %s}' % value.encode()
    answer = assert_envelope(await post(unstarted_runtime(tmp_path), body), 400, "bad_request")
    assert answer["detail"].startswith('"network_rtt_ms" should be'), answer
