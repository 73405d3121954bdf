"""What the server was really asked: a record of a run's queries, read from the wire by the runner.

The sample's own process records its queries too (`runner/queries.py`), but that
record lives in memory the sample controls. An exercise's check must not trust it,
so for exercise runs the connection gate relays every connection through the
runner and reads the PostgreSQL protocol as it passes: each query with the text
the server parsed, how many parameters were bound, how many rows came back, the
error (SQLSTATE) if any, and the transaction state once it was answered; plus the
cancel requests. The relay only reads; it never changes a byte.

The protocol (PostgreSQL's "Frontend/Backend Protocol", version 3): after a
startup packet without a type byte, every message is one type byte and a 32-bit
length. Only the few bodies the record needs are kept (their first
`KEEP_BODY` bytes); data rows and copy data are counted and skipped, so a large
result costs no memory here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

CANCEL_REQUEST_CODE = 80877102
SSL_REQUEST_CODE = 80877103
GSS_REQUEST_CODE = 80877104
QUERY_CANCELED = "57014"
KEEP_BODY = 65536
"""Bytes kept of a message body the record reads (a statement's text, an error)."""
MAX_QUERIES = 10_000
"""Queries recorded per run; beyond it they are counted in `dropped` only."""
MAX_SQL = 2000
"""Characters kept of a statement's text (a check needs its start, not megabytes of it)."""
MAX_STATEMENTS = 1000
"""Prepared statements remembered per connection; past it they are forgotten (their queries read "")."""
READ_CHUNK = 65536

_FRONTEND_KEPT = frozenset(b"QPB")
_BACKEND_KEPT = frozenset(b"EZC")
_TRANSACTION_STATES = {ord("I"): "idle", ord("T"): "transaction", ord("E"): "failed"}


@dataclass
class WireQuery:
    """One query as the server saw it."""

    connection: int
    start: float
    sql: str
    parameters: int = 0
    end: float | None = None
    rows: int = 0
    error: str | None = None
    error_message: str | None = None
    transaction_after: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.error == QUERY_CANCELED

    def as_dict(self) -> dict[str, object]:
        return {
            "connection": self.connection,
            "start": round(self.start, 6),
            "end": round(self.end if self.end is not None else self.start, 6),
            "sql": self.sql,
            "parameters": self.parameters,
            "rows": self.rows,
            "error": self.error,
            "error_message": self.error_message,
            "cancelled": self.cancelled,
            "transaction_after": self.transaction_after or "idle",
        }


@dataclass
class WireRecord:
    """Every connection and query of one run, in the order the server received them."""

    origin: float = field(default_factory=time.perf_counter)
    """The moment times are counted from (the hand-over of the code)."""
    queries: list[WireQuery] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    """Connections the code closed itself (it said goodbye, Terminate) rather than left to die with it."""
    cancel_requests: list[float] = field(default_factory=list)
    dropped: int = 0
    opaque: int = 0
    """Connections the record could not read (they asked for encryption)."""
    _open: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    def clock(self) -> float:
        return time.perf_counter() - self.origin

    def add(self, query: WireQuery) -> None:
        if len(self.queries) >= MAX_QUERIES:
            self.dropped += 1
            return
        self.queries.append(query)

    def relay_started(self) -> None:
        self._open += 1
        self._idle.clear()

    def relay_ended(self) -> None:
        self._open -= 1
        if self._open == 0:
            self._idle.set()

    async def settled(self, timeout: float) -> bool:
        """Wait until every relayed connection has ended; False when some are still open at the deadline."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def as_dict(self) -> dict[str, object]:
        return {
            "queries": [q.as_dict() for q in self.queries],
            "connections": self.connections,
            "closed": self.closed,
            "cancel_requests": [round(t, 6) for t in self.cancel_requests],
            "dropped": self.dropped,
        }


class MessageReader:
    """Splits one direction's bytes into (type, body) messages; bodies of other types are skipped."""

    def __init__(self, kept: frozenset[int], *, startup: bool) -> None:
        self.kept = kept
        self.startup = startup
        """The frontend's first message has no type byte."""
        self._header = bytearray()
        self._type = 0
        self._remaining = 0
        self._body = bytearray()
        self._in_body = False

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        view = memoryview(data)
        while view:
            if not self._in_body:
                need = (4 if self.startup else 5) - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) < (4 if self.startup else 5):
                    return
                if self.startup:
                    self._type, (length,) = 0, struct.unpack("!I", self._header)
                    self.startup = False
                else:
                    self._type, (length,) = self._header[0], struct.unpack("!I", self._header[1:])
                self._header.clear()
                self._remaining = max(0, length - 4)
                self._body.clear()
                self._in_body = True
            take = min(self._remaining, len(view))
            if self._type in self.kept or self._type == 0:
                room = KEEP_BODY - len(self._body)
                if room > 0:
                    self._body += view[: min(take, room)]
            view = view[take:]
            self._remaining -= take
            if self._remaining == 0:
                self._in_body = False
                yield self._type, bytes(self._body)


def _cstring(body: bytes, at: int) -> tuple[str, int]:
    end = body.find(b"\0", at)
    if end < 0:
        return body[at:].decode(errors="replace"), len(body)
    return body[at:end].decode(errors="replace"), end + 1


def _bind_parameters(body: bytes) -> int:
    """A Bind's parameter count: after the portal and statement names and the format codes."""
    _, at = _cstring(body, 0)
    _, at = _cstring(body, at)
    try:
        (formats,) = struct.unpack_from("!H", body, at)
        (count,) = struct.unpack_from("!H", body, at + 2 + 2 * formats)
    except struct.error:
        return 0
    return int(count)


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    code = message = None
    at = 0
    while at < len(body) and body[at] != 0:
        kind = body[at]
        value, at = _cstring(body, at + 1)
        if kind == ord("C"):
            code = value
        elif kind == ord("M"):
            message = value
    return code, message


@dataclass
class _Pending:
    query: WireQuery
    cycle: int
    simple: bool


class ConnectionTap:
    """Turns one connection's two message streams into queries on the run's record."""

    def __init__(self, record: WireRecord) -> None:
        self.record = record
        self.number = 0
        self.opaque = False
        self._frontend = MessageReader(_FRONTEND_KEPT, startup=True)
        self._backend = MessageReader(_BACKEND_KEPT, startup=False)
        self._statements: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        """One copy of each statement text, however often it runs."""
        self._bound: tuple[str, int] = ("", 0)
        self._last_parse: tuple[str, float] | None = None
        self._pending: deque[_Pending] = deque()
        self._unsettled: list[WireQuery] = []
        self._cycle = 0
        """Syncs and simple queries sent; each is answered by one ReadyForQuery."""

    def from_client(self, data: bytes) -> None:
        if self.opaque:
            return
        now = self.record.clock()
        for kind, body in self._frontend.feed(data):
            if kind == 0:
                self._startup(body, now)
            elif kind == ord("Q"):
                self._cycle += 1
                query = WireQuery(self.number, now, self._text(body, 0))
                self._pending.append(_Pending(query, self._cycle, simple=True))
            elif kind == ord("P"):
                name, at = _cstring(body, 0)
                text = self._text(body, at)
                if len(self._statements) >= MAX_STATEMENTS and name not in self._statements:
                    self._statements.clear()
                self._statements[name] = text
                self._last_parse = (text, now)
            elif kind == ord("B"):
                _, at = _cstring(body, 0)
                statement, _ = _cstring(body, at)
                self._bound = (self._statements.get(statement, ""), _bind_parameters(body))
            elif kind == ord("E"):
                sql, parameters = self._bound
                query = WireQuery(self.number, now, sql, parameters)
                self._pending.append(_Pending(query, self._cycle + 1, simple=False))
            elif kind == ord("S"):
                self._cycle += 1
            elif kind == ord("X") and self.number:
                self.record.closed += 1

    def _text(self, body: bytes, at: int) -> str:
        text = _cstring(body, at)[0][:MAX_SQL]
        if len(self._texts) >= MAX_STATEMENTS:
            self._texts.clear()
        return self._texts.setdefault(text, text)

    def _startup(self, body: bytes, now: float) -> None:
        (code,) = struct.unpack_from("!I", body, 0) if len(body) >= 4 else (0,)
        if code == CANCEL_REQUEST_CODE:
            self.record.cancel_requests.append(now)
            self.opaque = True  # nothing else is said on a cancel connection
        elif code in (SSL_REQUEST_CODE, GSS_REQUEST_CODE):
            self.record.opaque += 1
            self.opaque = True
        else:
            self.record.connections += 1
            self.number = self.record.connections

    def from_server(self, data: bytes) -> None:
        if self.opaque:
            return
        now = self.record.clock()
        for kind, body in self._backend.feed(data):
            if kind == ord("D"):
                if self._pending:
                    self._pending[0].query.rows += 1
            elif kind in (ord("C"), ord("s"), ord("I")):
                if self._pending and not self._pending[0].simple:
                    self._complete(self._pending.popleft().query, now)
            elif kind == ord("E"):
                self._error(body, now)
            elif kind == ord("Z"):
                self._ready(body, now)

    def _error(self, body: bytes, now: float) -> None:
        code, message = _error_fields(body)
        if self._pending:
            head = self._pending[0]
            head.query.error, head.query.error_message = code, message
            if head.simple:
                return  # answered by its ReadyForQuery
            self._pending.popleft()
            self._complete(head.query, now)
            while self._pending and not self._pending[0].simple and self._pending[0].cycle == head.cycle:
                self._pending.popleft()  # the server skips the rest of the cycle
        elif self._last_parse is not None:  # a statement that did not even parse
            text, sent = self._last_parse
            self._complete(WireQuery(self.number, sent, text, error=code, error_message=message), now)

    def _ready(self, body: bytes, now: float) -> None:
        state = _TRANSACTION_STATES.get(body[0], "idle") if body else "idle"
        if self._pending and self._pending[0].simple:
            self._complete(self._pending.popleft().query, now)
        for query in self._unsettled:
            query.transaction_after = state
        self._unsettled.clear()
        self._last_parse = None

    def _complete(self, query: WireQuery, now: float) -> None:
        query.end = now
        self._unsettled.append(query)
        self.record.add(query)


async def relay(client: socket.socket, server: socket.socket, tap: ConnectionTap) -> None:
    """Copy bytes both ways until both sides are done, showing each chunk to the tap."""
    record = tap.record
    record.relay_started()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pump(client, server, tap.from_client))
            group.create_task(_pump(server, client, tap.from_server))
    finally:
        client.close()
        server.close()
        record.relay_ended()


async def _pump(source: socket.socket, sink: socket.socket, show: Callable[[bytes], None]) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await loop.sock_recv(source, READ_CHUNK):
            show(data)
            await loop.sock_sendall(sink, data)
    except OSError:
        pass  # one side is gone: end this direction, and let the other see it
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
