"""The sandbox's only way to PostgreSQL: connections handed over by the runner, at a bounded rate.

A sandbox sees no PostgreSQL socket. When its code connects (asyncpg, through the
child's patched `create_unix_connection`), the child asks over a private socket
pair; the runner connects to the real server and passes the connected socket back
(SCM_RIGHTS). Authentication still happens in the child, with the run's role.

Why: a connection that never finishes its handshake takes a server slot that no
role limit counts. Handing connections out from a token bucket (a burst of
`BURST`, then `PER_SECOND` a second), with the server's `authentication_timeout`
closing stalled handshakes after a couple of seconds, bounds what one sandbox can
hold, so a hostile sample cannot lock everyone else out of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .tokenbucket import TokenBucket

if TYPE_CHECKING:  # the sandbox's child imports this module: keep it light
    from .postgres import ServerAddress
    from .wire import WireRecord

log = logging.getLogger("runner.gate")

GATE_HOST = "/run/workshop-postgres"
"""The host a sandbox's code is given: not a real folder, the child intercepts it."""
BURST = 32
PER_SECOND = 16.0
MAX_WAIT = 5.0
GRANTED, REFUSED = b"y", b"n"


async def open_server_socket(server: ServerAddress) -> socket.socket:
    loop = asyncio.get_running_loop()
    if server.is_unix_socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: str | tuple[str, int] = f"{server.host}/.s.PGSQL.{server.port}"
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET, socket.SOCK_STREAM)
        address = (server.host, server.port)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Tapping:
    """Whether the gate hands the server's socket over as it is, or relays it through a wire record.

    Set when a job is handed over (a sandbox is prepared before anyone knows what it will
    run); only connections granted after that are relayed.
    """

    record: WireRecord | None = None
    granted: int = 0
    """Server connections the gate handed over (or relayed) so far: none means the run never reached its database."""


async def serve_gate(
    gate: socket.socket, server: ServerAddress, bucket: TokenBucket | None = None, tapping: Tapping | None = None
) -> None:
    """Answer one sandbox's connection requests until it closes its end (and its relays end)."""
    loop = asyncio.get_running_loop()
    bucket = bucket or TokenBucket(BURST, PER_SECOND)
    tapping = tapping or Tapping()
    gate.setblocking(False)
    try:
        async with asyncio.TaskGroup() as relays:
            while await loop.sock_recv(gate, 1):
                wait = bucket.take(max_wait=MAX_WAIT)
                if wait is None:
                    await loop.sock_sendall(gate, REFUSED)
                    continue
                if wait:
                    await asyncio.sleep(wait)
                try:
                    conn = await open_server_socket(server)
                except OSError as error:
                    log.warning("gate could not reach PostgreSQL: %s", error)
                    await loop.sock_sendall(gate, REFUSED)
                    continue
                record = tapping.record
                if record is None:
                    with conn:
                        await _send_fd(gate, conn.fileno())
                else:
                    relays.create_task(await _relayed(gate, conn, record))
                tapping.granted += 1
    except (ConnectionError, OSError):
        pass  # the sandbox is gone
    finally:
        gate.close()
        log.debug("gate closed after %d connection(s)", tapping.granted)


async def _relayed(gate: socket.socket, conn: socket.socket, record: WireRecord) -> Coroutine[Any, Any, None]:
    """Hand the sandbox one end of a socket pair; return the relay of the other end to the server."""
    from .wire import ConnectionTap, relay

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        await _send_fd(gate, theirs.fileno())
    except BaseException:
        ours.close()
        conn.close()
        raise
    finally:
        theirs.close()
    return relay(ours, conn, ConnectionTap(record))


async def _send_fd(gate: socket.socket, fd: int) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(gate, [GRANTED], [fd])
            return
        except BlockingIOError:
            waiter = loop.create_future()
            loop.add_writer(gate.fileno(), waiter.set_result, None)
            try:
                await waiter
            finally:
                with contextlib.suppress(Exception):
                    loop.remove_writer(gate.fileno())
