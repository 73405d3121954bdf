"""Per-connection query events: the summary's maths, and what the chapter's samples show through the API."""

from __future__ import annotations

from runner.queries import Phase, QueryRecord, max_concurrency, merge_intervals, summarise

from .conftest import LiveRunner


def record(connection: int, start: float, end: float, error: str | None = None) -> QueryRecord:
    return QueryRecord(connection, start, end, "SELECT  1\n  FROM x", error)


def test_merging_keeps_at_most_the_limit_and_covers_every_interval() -> None:
    intervals = [(i * 0.01, i * 0.01 + 0.004) for i in range(1000)]
    merged = merge_intervals(intervals, limit=50)
    assert len(merged) <= 50
    assert merged[0][0] == 0.0 and merged[-1][1] == round(9.99 + 0.004, 6)
    for start, end in intervals:
        assert any(s <= start and end <= e + 1e-9 for s, e in merged)


def test_concurrency_counts_queries_in_flight_at_once() -> None:
    assert max_concurrency([record(1, 0, 1), record(2, 0.5, 1.5), record(3, 1.5, 2)]) == 2
    assert max_concurrency([record(1, 0, 1), record(1, 1, 2)]) == 1  # back to back is not overlap


def test_phases_are_measured_on_raw_records() -> None:
    records = [record(c, 0.0, 0.1) for c in (1, 2, 3)] + [
        record(1 + i % 2, 1 + i * 0.1, 1.05 + i * 0.1) for i in range(4)
    ]
    summary = summarise(records, [Phase("together", 0, 0.2), Phase("one_by_one", 0.9, 2)])
    together, one_by_one = summary["phases"]
    assert (together["connections"], together["max_concurrency"]) == (3, 3)
    assert (one_by_one["connections"], one_by_one["max_concurrency"], one_by_one["queries"]) == (2, 1, 4)
    assert summary["statements"] == [{"sql": "SELECT 1 FROM x", "count": 7}]


def test_latency_percentiles_are_interpolated() -> None:
    records = [record(1, i, i + ms / 1000) for i, ms in enumerate([4, 1, 3, 2])]
    assert summarise(records, [])["latency_ms"] == {"p50": 2.5, "p95": 3.85, "max": 4.0}


def test_pool_comparison_shows_six_lanes_together_then_one_at_a_time(live_runner: LiveRunner) -> None:
    summary = live_runner.run("chapter_05/04_pool_vs_sequential").json()
    queries = summary["queries"]
    assert len(queries["connections"]) == 6
    phases = {p["name"]: p for p in queries["phases"]}
    concurrent, sequential = phases["query_products_concurrently"], phases["query_products_sequentially"]
    assert concurrent["connections"] == 6 and concurrent["max_concurrency"] > 1
    assert sequential["max_concurrency"] == 1
    assert concurrent["queries"] >= 10_000 and sequential["queries"] >= 10_000
    for connection in queries["connections"]:
        assert 0 < len(connection["intervals"]) <= 300
    timings = {t["name"]: t for t in summary["timings"]}
    assert abs(timings["query_products_concurrently"]["start"] - concurrent["start"]) < 1e-3


def test_two_queries_on_one_connection_show_the_clash(live_runner: LiveRunner) -> None:
    queries = live_runner.run("chapter_05/02_one_connection_two_queries").json()["queries"]
    assert len(queries["connections"]) == 1
    assert queries["count"] == 2 and queries["errors"] == 1
    assert queries["max_concurrency"] == 2
    assert [q["error"] for q in queries["sample"]].count("InterfaceError") == 1


def test_query_events_stream_before_finished(live_runner: LiveRunner) -> None:
    import json

    with live_runner.stream("chapter_05/03_pool") as response:
        kinds = [json.loads(line)["event"] for line in response.iter_lines()]
    assert kinds.index("queries") < kinds.index("finished")


def test_code_without_queries_reports_none(live_runner: LiveRunner) -> None:
    assert live_runner.run("chapter_05/06_sync_generator").json()["queries"] is None
