"""The 10,000-query comparison under each simulated round trip, alone and beside other runs.

`python -m bench.round_trip --url URL` asks a running runner (`make serve`) for
chapter_05/04_pool_vs_sequential once per repetition and round trip, and prints
each run's sequential and concurrent times, their ratio and the run's time.
With `--load N`, N other runs of the same sample are kept going throughout, as a
busy workshop would: by default with no round trip (CPU-bound, the heaviest load
this sample makes), or with `--load-round-trip`. Figures are printed, not asserted
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


class Load:
    """`count` clients running the comparison back to back until stopped."""

    def __init__(self, url: str, count: int, round_trip_ms: float = 0) -> None:
        self.url = url
        self.round_trip_ms = round_trip_ms
        self.stopping = threading.Event()
        self.runs = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]

    def _loop(self) -> None:
        with httpx.Client(base_url=self.url) as client:
            while not self.stopping.is_set():
                try:
                    measure(client, self.round_trip_ms)
                    self.runs += 1
                except (RuntimeError, httpx.HTTPError) as error:
                    self.failures.append(str(error))
                    return

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
    parser.add_argument("--round-trips", type=float, nargs="*", default=list(ROUND_TRIPS_MS))
    args = parser.parse_args(argv)
    print(
        f"{COMPARISON_SNIPPET} at {args.url}, {args.runs} run(s) per round trip, "
        f"load {args.load} run(s) at {args.load_round_trip:g} ms, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with httpx.Client(base_url=args.url) as client, Load(args.url, args.load, args.load_round_trip) as load:
        for round_trip in args.round_trips:
            figures = [measure(client, round_trip) for _ in range(args.runs)]
            ratios = [m.ratio for m in figures]
            for m in figures:
                print(
                    f"  {round_trip:g} ms: sequential {m.sequential:6.2f} s  concurrent {m.concurrent:6.2f} s  "
                    f"ratio {m.ratio:5.2f}x  run {m.run:6.2f} s"
                )
            print(
                f"{round_trip:g} ms: ratio min {min(ratios):.2f}x median {median(ratios):.2f}x "
                f"max {max(ratios):.2f}x; longest run {max(m.run for m in figures):.2f} s"
            )
    if load.failures:
        print(f"load runs failed: {load.failures[:3]}")
        return 1
    print(f"({load.runs} load run(s) finished meanwhile)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
