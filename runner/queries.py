"""What every database connection of a run did, summarised so that 10,000 queries stay small.

The child attaches `QueryRecorder.log` to each connection through asyncpg's query
logging. At the end it sends one summary: per-connection busy intervals (merged
until each lane is at most `MAX_INTERVALS` long), counts, latency percentiles
(interpolated: `runner/percentile.py`), and for each `async_timed` phase how many
connections it used and how many were busy at once (computed from the raw records,
so merging never invents overlap).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .percentile import percentile

MAX_RECORDS = 200_000
MAX_INTERVALS = 300
SAMPLE_SIZE = 100
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class QueryRecord:
    connection: int
    start: float
    end: float
    sql: str
    error: str | None


@dataclass
class Phase:
    name: str
    start: float
    end: float


@dataclass
class QueryRecorder:
    t0: float = field(default_factory=time.monotonic)
    records: list[QueryRecord] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    connections: int = 0
    dropped: int = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def attach(self, conn: Any) -> None:
        """Number the connection and log its queries (asyncpg calls back just after each one)."""
        self.connections += 1
        number = self.connections
        conn.add_query_logger(lambda logged: self.log(number, logged))

    def log(self, connection: int, logged: Any) -> None:
        if len(self.records) >= MAX_RECORDS:
            self.dropped += 1
            return
        end = self.now()
        error = type(logged.exception).__name__ if logged.exception is not None else None
        self.records.append(QueryRecord(connection, max(0.0, end - logged.elapsed), end, logged.query, error))

    def phase(self, name: str, start: float, end: float) -> None:
        self.phases.append(Phase(name, start, end))

    def summary(self) -> dict[str, Any] | None:
        if not self.records:
            return None
        return summarise(self.records, self.phases, self.dropped)


def short_sql(sql: str, limit: int = 80) -> str:
    flat = _SPACES.sub(" ", sql).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def merge_intervals(intervals: list[tuple[float, float]], limit: int = MAX_INTERVALS) -> list[tuple[float, float]]:
    """Join intervals separated by gaps, widening the tolerated gap until at most `limit` remain."""
    ordered = sorted(intervals)
    gap = 0.0
    while True:
        merged: list[list[float]] = []
        for start, end in ordered:
            if merged and start - merged[-1][1] <= gap:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if len(merged) <= limit:
            return [(round(s, 6), round(e, 6)) for s, e in merged]
        gap = max(gap * 2, 0.0005)


class Span(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


def max_concurrency(records: Iterable[Span]) -> int:
    """Most queries in flight at one instant (on distinct connections or not); one ending as another
    starts does not overlap it."""
    records = list(records)
    edges = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records], key=lambda e: (e[0], e[1]))
    busy = peak = 0
    for _, delta in edges:
        busy += delta
        peak = max(peak, busy)
    return peak


def summarise(records: list[QueryRecord], phases: list[Phase], dropped: int = 0) -> dict[str, Any]:
    records = sorted(records, key=lambda r: r.start)
    latencies = sorted(r.end - r.start for r in records)
    by_connection: dict[int, list[QueryRecord]] = {}
    statements: dict[str, int] = {}
    for record in records:
        by_connection.setdefault(record.connection, []).append(record)
        key = short_sql(record.sql)
        statements[key] = statements.get(key, 0) + 1
    connections = [
        {
            "id": number,
            "queries": len(items),
            "errors": sum(1 for r in items if r.error),
            "busy_seconds": round(sum(r.end - r.start for r in items), 6),
            "intervals": merge_intervals([(r.start, r.end) for r in items if not r.error]),
            "errors_at": [round(r.start, 6) for r in items if r.error][:SAMPLE_SIZE],
        }
        for number, items in sorted(by_connection.items())
    ]
    phase_stats = []
    for phase in phases:
        inside = [r for r in records if r.start >= phase.start and r.end <= phase.end]
        phase_stats.append(
            {
                "name": phase.name,
                "start": round(phase.start, 6),
                "end": round(phase.end, 6),
                "queries": len(inside),
                "connections": len({r.connection for r in inside}),
                "max_concurrency": max_concurrency(inside),
            }
        )
    return {
        "count": len(records) + dropped,
        "errors": sum(1 for r in records if r.error),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 3),
            "p95": round(percentile(latencies, 0.95) * 1000, 3),
            "max": round(latencies[-1] * 1000, 3),
        },
        "span": [round(records[0].start, 6), round(max(r.end for r in records), 6)],
        "max_concurrency": max_concurrency(records),
        "connections": connections,
        "phases": phase_stats,
        "statements": [{"sql": sql, "count": n} for sql, n in sorted(statements.items(), key=lambda kv: -kv[1])[:10]],
        "sample": [
            {
                "connection": r.connection,
                "start": round(r.start, 6),
                "end": round(r.end, 6),
                "sql": short_sql(r.sql),
                "error": r.error,
            }
            for r in records[:SAMPLE_SIZE]
        ],
        "sample_truncated": len(records) > SAMPLE_SIZE,
        "dropped": dropped,
    }
