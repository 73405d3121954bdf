"""What an exercise's check is given about a run, and how it says "not yet" (see EXERCISES.md).

A check is `async def check(result: Result) -> str` in `code/<lesson>/exNN_name_check.py`:
it returns the message shown when the exercise is solved, or raises `NotSolved`
with a message that helps the learner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class NotSolved(Exception):
    """Raised by a check: the run does not solve the exercise; the message says what was seen and what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RaisedException:
    """The exception that ended the program, from the last line of its traceback."""

    type: str
    message: str


@dataclass(frozen=True)
class Timing:
    """One `async_timed` report of the program (informative only: the program sent it)."""

    name: str
    start: float
    seconds: float


@dataclass(frozen=True)
class Query:
    """One query as the server received it and answered it (times in seconds since the code was handed over)."""

    connection: int
    start: float
    end: float
    sql: str
    parameters: int = 0
    rows: int = 0
    error: str | None = None
    error_message: str | None = None
    cancelled: bool = False
    transaction_after: str = "idle"


@dataclass
class Result:
    """What the reader's code did, as the runner saw it."""

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    exception: RaisedException | None
    seconds: float
    queries: list[Query] = field(default_factory=list)
    connections: int = 0
    cancel_requests: list[float] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    db: Any = None
    """An `asyncpg.Connection` to the run's database as the reader's code left it."""

    def max_concurrency(self, start: float | None = None, end: float | None = None) -> int:
        """Most queries in flight at once, optionally only within [start, end]."""
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        events: list[tuple[float, int]] = []
        for query in self.queries:
            begin, finish = max(query.start, lo), min(query.end, hi)
            if begin < finish or (begin == finish and lo <= query.start <= hi):
                events += [(begin, 1), (finish, -1)]
        peak = current = 0
        for _, step in sorted(events, key=lambda event: (event[0], event[1])):
            current += step
            peak = max(peak, current)
        return peak

    def queries_matching(self, pattern: str) -> list[Query]:
        """Queries whose SQL matches a case-insensitive regular expression."""
        compiled = re.compile(pattern, re.I)
        return [query for query in self.queries if compiled.search(query.sql)]
