"""The gate hands a sandbox real connected sockets, rationed by its token bucket (no PostgreSQL needed)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from runner.gate import GRANTED, REFUSED, serve_gate
from runner.postgres import ServerAddress
from runner.tokenbucket import TokenBucket

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def ask(sandbox_end: socket.socket) -> tuple[bytes, list[int]]:
    """What the sandbox's child does (runner/child.py connect_through_gate), off the event loop."""

    def blocking() -> tuple[bytes, list[int]]:
        sandbox_end.sendall(b"c")
        message, fds, _, _ = socket.recv_fds(sandbox_end, 1, 1)
        return message, fds

    return await asyncio.to_thread(blocking)


async def test_a_burst_is_granted_then_requests_beyond_the_wait_are_refused() -> None:
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server = ServerAddress("127.0.0.1", port, "nobody", "", "none")
    clock = Clock()  # frozen: no token comes back during the test
    runner_end, sandbox_end = socket.socketpair()
    gate = asyncio.create_task(serve_gate(runner_end, server, TokenBucket(2, 0.1, clock)))
    try:
        answers = [await ask(sandbox_end) for _ in range(3)]
        assert [message for message, _ in answers] == [GRANTED, GRANTED, REFUSED]  # the third is 10 s away
        for _, fds in answers[:2]:
            assert len(fds) == 1
            with socket.socket(fileno=fds[0]) as conn:  # a live connection to the server, made by the runner
                assert conn.getpeername()[1] == port
        assert answers[2][1] == []
    finally:
        sandbox_end.close()  # the sandbox goes away: the gate ends on its own
        await asyncio.wait_for(gate, 5)
        listener.close()
        await listener.wait_closed()


async def test_a_token_a_moment_away_is_waited_for() -> None:
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    server = ServerAddress("127.0.0.1", listener.sockets[0].getsockname()[1], "nobody", "", "none")
    runner_end, sandbox_end = socket.socketpair()
    gate = asyncio.create_task(serve_gate(runner_end, server, TokenBucket(1, 20.0)))  # then one each 50 ms
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        answers = [await ask(sandbox_end) for _ in range(3)]
        elapsed = loop.time() - began
        assert [message for message, _ in answers] == [GRANTED] * 3
        assert elapsed >= 0.09, f"two tokens owed at 20 a second take 0.1 s, not {elapsed:.3f} s"
        for _, fds in answers:
            socket.socket(fileno=fds[0]).close()
    finally:
        sandbox_end.close()
        await asyncio.wait_for(gate, 5)
        listener.close()
        await listener.wait_closed()
