"""What an exercise's check is given, and how it says "not yet".

A check is `async def check(result: Result) -> str` in `code/chapter_NN/exNN_name_check.py`.
It returns the message shown when the exercise is solved, or raises `NotSolved` with
a message that tells the learner what was seen and what to change.

It runs after the learner's code, in a process of its own in the same sandbox, once
every process of the learner's is gone. Everything in `Result` except `timings`
was recorded by the runner, outside the learner's reach: the output as the runner
received it, how the program ended, and the queries as the server received them
(`runner/wire.py`). `db` is a connection to the run's database as the learner's
code left it. All times are seconds since the learner's code was handed over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.queries import max_concurrency as max_concurrency  # for checks judging a part of the queries

if TYPE_CHECKING:
    import asyncpg

PHASE_SLACK = 0.005
"""Seconds of leeway between the program's clock (timings) and the runner's (queries)."""
_LAST_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


class NotSolved(Exception):
    """Raised by a check: the exercise is not solved yet; the message says why and what to try."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RaisedException:
    """The exception that ended the program: its class name (no module) and its message."""

    type: str
    message: str

    def __str__(self) -> str:
        """`Type: message`, without a closing full stop (a sentence around it adds its own)."""
        message = self.message.strip().rstrip(".")
        return f"{self.type}: {message}" if message else self.type


@dataclass(frozen=True)
class Query:
    """One query as the server received it."""

    connection: int
    start: float
    end: float
    sql: str
    parameters: int
    rows: int
    error: str | None
    error_message: str | None
    cancelled: bool
    transaction_after: str
    """`idle`, `transaction` or `failed`: the connection's state once the query was answered."""


@dataclass(frozen=True)
class Timing:
    """One `async_timed` report of the program's own (informative: the program could forge it)."""

    name: str
    start: float
    seconds: float


@dataclass
class Result:
    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    exception: RaisedException | None
    seconds: float
    queries: list[Query]
    connections: int
    cancel_requests: list[float]
    closed: int = 0
    """Connections the code closed itself; the others were cut when the program ended."""
    timings: list[Timing] = field(default_factory=list)
    dropped: int = 0
    """Queries beyond the record's capacity, counted but not kept."""
    db: asyncpg.Connection[Any] = field(default=None, repr=False)

    def max_concurrency(self, start: float | None = None, end: float | None = None) -> int:
        """Most queries in flight at one instant, optionally within [start, end]."""
        inside = [q for q in self.queries if (start is None or q.start >= start) and (end is None or q.end <= end)]
        return max_concurrency(inside)

    def printed(self, label: str) -> str | None:
        """The value the program printed after `label: ` on a line of its own, or None."""
        match = re.search(rf"^{re.escape(label)}:[ \t]*(.*?)\s*$", self.stdout, re.M)
        return match.group(1) if match else None

    def phase(self, name: str) -> Timing | None:
        """The last `async_timed` report of the function `name` (the program's own report)."""
        found = [t for t in self.timings if t.name == name]
        return found[-1] if found else None

    def phase_concurrency(self, name: str) -> int:
        """Most queries in flight at once while the function `name` ran; 0 when it never reported."""
        timing = self.phase(name)
        if timing is None:
            return 0
        # the program's clock starts when it reads its job, a moment after the runner's: allow for it
        return self.max_concurrency(timing.start - PHASE_SLACK, timing.start + timing.seconds + PHASE_SLACK)

    def queries_matching(self, pattern: str) -> list[Query]:
        """Queries whose SQL matches `pattern` (a case-insensitive regular expression)."""
        compiled = re.compile(pattern, re.I)
        return [q for q in self.queries if compiled.search(q.sql)]

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Result:
        """Build from what the runner sends the check's process (see `runner/exercises.py`)."""
        wire = data["wire"]
        return cls(
            status=data["status"],
            exit_code=data["exit_code"],
            stdout=data["stdout"],
            stderr=data["stderr"],
            exception=raised_exception(data["stderr"]) if data["status"] == "error" else None,
            seconds=data["seconds"],
            queries=[Query(**q) for q in wire["queries"]],
            connections=wire["connections"],
            cancel_requests=list(wire["cancel_requests"]),
            closed=wire.get("closed", 0),
            timings=[Timing(**t) for t in data.get("timings", [])],
            dropped=wire.get("dropped", 0),
        )


def raised_exception(stderr: str) -> RaisedException | None:
    """The exception named by the traceback at the end of stderr (`asyncpg.X: msg` -> `X`, `msg`)."""
    lines = stderr.rstrip("\n").splitlines()
    if "Traceback (most recent call last):" not in lines:
        return None
    start = len(lines) - 1 - lines[::-1].index("Traceback (most recent call last):")
    for line in lines[start + 1 :]:
        if line.startswith(" ") or line.startswith("note: "):
            continue
        match = _LAST_LINE.match(line)
        if match:
            return RaisedException(match["type"].rsplit(".", 1)[-1], (match["message"] or "").strip())
    return None
