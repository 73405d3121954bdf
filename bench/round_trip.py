"""The 10,000-query comparison under each simulated round trip, alone and beside other runs.

`python -m bench.round_trip --url URL` asks a running runner (`make serve`) for
chapter_05/04_pool_vs_sequential once per repetition and round trip, and prints
each run's sequential and concurrent times, their ratio and the run's time.
With `--load N`, N other runs are kept going throughout: by default the same
sample with no round trip (CPU-bound, the heaviest load this sample makes; or
`--load-round-trip`), or with `--load-kind readers` runs that keep three
connections looking up products (the live test's load). Figures are printed, not asserted
(tests/browser/test_round_trip.py asserts).
"""

from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass

import httpx

from runner.round_trip import ROUND_TRIPS_MS

from .runs import COMPARISON_SNIPPET
from .stats import median

SEQUENTIAL = "query_products_sequentially"
CONCURRENT = "query_products_concurrently"


@dataclass(frozen=True)
class Measured:
    round_trip_ms: float
    sequential: float
    concurrent: float
    run: float

    @property
    def ratio(self) -> float:
        return self.sequential / self.concurrent


def measure(client: httpx.Client, round_trip_ms: float) -> Measured:
    """One run of the comparison; raises when it does not end well, so a figure is never made up."""
    response = client.post(
        "/api/runs", json={"snippet": COMPARISON_SNIPPET, "network_rtt_ms": round_trip_ms}, timeout=120
    )
    summary = response.json()
    if response.status_code != 200 or summary.get("status") != "ok":
        raise RuntimeError(f"run failed: HTTP {response.status_code} {summary}")
    if summary["network"]["round_trip_ms"] != round_trip_ms:
        raise RuntimeError(f"asked for {round_trip_ms} ms, the run says {summary['network']}")
    timings = {t["name"]: t["seconds"] for t in summary["timings"]}
    return Measured(round_trip_ms, timings[SEQUENTIAL], timings[CONCURRENT], summary["duration"]["run"])


READERS_CODE = """
import asyncio
import asyncpg


async def reader(pool):
    while True:
        await pool.fetchval("SELECT product_name FROM product WHERE product_id = $1", 100)
        await asyncio.sleep(0.01)


async def main():
    async with asyncpg.create_pool(min_size=3, max_size=3) as pool:
        await asyncio.gather(*(reader(pool) for _ in range(3)))


asyncio.run(main())
"""
"""Another reader's run: three connections looking up products, each about a hundred times a second, until stopped."""
READERS_SNIPPET = "chapter_05/03_pool"
READERS_SPELL = 20.0
"""Seconds one readers' run is kept before the next replaces it (runs stop at 30 s)."""


class Load:
    """`count` clients keeping a run going until stopped: the comparison back to back, or readers' runs."""

    def __init__(self, url: str, count: int, round_trip_ms: float = 0, kind: str = "comparison") -> None:
        self.url = url
        self.round_trip_ms = round_trip_ms
        self.kind = kind
        self.stopping = threading.Event()
        self.runs = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]

    def _loop(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stopping.is_set():
                try:
                    if self.kind == "readers":
                        self._readers(client)
                    else:
                        measure(client, self.round_trip_ms)
                    self.runs += 1
                except (RuntimeError, httpx.HTTPError) as error:
                    self.failures.append(str(error))
                    return

    def _readers(self, client: httpx.Client) -> None:
        body = {"snippet": READERS_SNIPPET, "code": READERS_CODE}
        with client.stream("POST", "/api/runs", json=body, headers={"accept": "application/x-ndjson"}) as response:
            lines = response.iter_lines()
            if response.status_code != 200 or '"started"' not in next(lines):
                raise RuntimeError(f"a readers' run did not start: HTTP {response.status_code}")
            self.stopping.wait(READERS_SPELL)  # then the stream closes and the runner cancels the run

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trip", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a running runner")
    parser.add_argument("--runs", type=int, default=5, help="repetitions per round trip")
    parser.add_argument("--load", type=int, default=0, help="other runs kept going at the same time")
    parser.add_argument("--load-round-trip", type=float, default=0, help="the load runs' round trip (ms)")
    parser.add_argument(
        "--load-kind", choices=("comparison", "readers"), default="comparison", help="what the load runs run"
    )
    parser.add_argument("--round-trips", type=float, nargs="*", default=list(ROUND_TRIPS_MS))
    args = parser.parse_args(argv)
    print(
        f"{COMPARISON_SNIPPET} at {args.url}, {args.runs} run(s) per round trip, "
        f"load {args.load} {args.load_kind} run(s) at {args.load_round_trip:g} ms, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    load = Load(args.url, args.load, args.load_round_trip, args.load_kind)
    with httpx.Client(base_url=args.url) as client, load:
        for round_trip in args.round_trips:
            figures, failed = [], []
            for _ in range(args.runs):
                try:
                    figures.append(measure(client, round_trip))
                except RuntimeError as error:  # a timeout, say: counted and shown, never left out silently
                    failed.append(str(error)[:300])
                    print(f"  {round_trip:g} ms: {failed[-1]}")
            if not figures:
                continue
            ratios = [m.ratio for m in figures]
            for m in figures:
                print(
                    f"  {round_trip:g} ms: sequential {m.sequential:6.2f} s  concurrent {m.concurrent:6.2f} s  "
                    f"ratio {m.ratio:5.2f}x  run {m.run:6.2f} s"
                )
            print(
                f"{round_trip:g} ms: ratio min {min(ratios):.2f}x median {median(ratios):.2f}x "
                f"max {max(ratios):.2f}x; longest run {max(m.run for m in figures):.2f} s; {len(failed)} failed"
            )
    if load.failures:
        print(f"load runs failed: {load.failures[:3]}")
        return 1
    print(f"({load.runs} load run(s) finished meanwhile)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
