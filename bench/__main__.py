"""`python -m bench` (`make bench`): every benchmark, in one run, on this machine.

Configurations run one after another (see bench.configurations): cold path
(pool 0), warm pool (latency, throughput), a warm runner beside the learners'
database (fidelity), repeated starts, then warm runners with the system-call
filter on and off (seccomp cost). Exit status 1 only when runs failed
or a section could not be measured; missed targets are reported, not fatal.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import report, sections
from .configurations import (
    measure_cold,
    measure_fidelity,
    measure_floor,
    measure_layers,
    measure_seccomp,
    measure_startup,
    measure_warm,
)
from .plan import FULL, QUICK, WARM_POOL_SIZE, Results, default_pool_size
from .report import secs
from .server import DEFAULT_CACHE_DIR


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min)"


def attempt(results: Results, section: str, step: Callable[..., None], *args: Any) -> None:
    """Run one measuring step; whatever fails there (a runner that will not start) fails its section only."""
    try:
        step(*args)
    except Exception as error:  # reported and counted: the other sections still measure
        results.failures.append(f"{section}: {error}")
        print(f"  !! {section} failed: {error}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations and a 5 s throughput (smoke run)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="the runners' WORKSHOP_CACHE_DIR")
    parser.add_argument(
        "--learner-cache-dir",
        type=Path,
        default=None,
        help="WORKSHOP_CACHE_DIR of the learners' database (default: <cache-dir>-learner)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    cache_dir: Path = args.cache_dir
    learner_cache: Path = args.learner_cache_dir or cache_dir.with_name(cache_dir.name + "-learner")
    began = time.perf_counter()
    default_size = default_pool_size()
    results = Results(warm_size=default_size if default_size > 0 else WARM_POOL_SIZE)

    print(f"asyncio workshop runner benchmarks ({'quick' if args.quick else 'full'})")
    print(
        f"  {platform.node()}: {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {load()}"
    )
    print(f"  runners: python -m runner serve, WORKSHOP_CACHE_DIR={cache_dir}, WORKSHOP_LOG_LEVEL=WARNING")
    print(
        f"  WORKSHOP_POOL_SIZE default {default_size}; warm configuration uses {results.warm_size}, "
        "cold uses 0; other settings are the runner's defaults",
        flush=True,
    )

    attempt(results, "cold path", measure_cold, plan, cache_dir, results)
    attempt(results, "warm pool", measure_warm, plan, cache_dir, results)
    attempt(results, "fidelity", measure_fidelity, plan, cache_dir, learner_cache, results)
    attempt(results, "start to ready", measure_startup, plan, cache_dir, results)
    attempt(results, "seccomp cost", measure_seccomp, plan, cache_dir, results)
    attempt(results, "containment cost", measure_layers, plan, cache_dir, results)
    attempt(results, "floor", measure_floor, plan, cache_dir, results)

    sections.print_latency(plan, results)
    sections.print_throughput(plan, results)
    sections.print_fidelity(plan, results)
    sections.print_startup(results)
    sections.print_load(plan, results)
    sections.print_seccomp(plan, results)
    sections.print_layers(plan, results)
    sections.print_burst(plan, results)
    sections.print_floor(results)
    report.print_targets(sections.targets(results))

    errors = results.run_errors()
    print(f"  failed runs: {errors}; sections not measured: {len(results.failures)}")
    print(f"  {load()}; benchmark took {secs(time.perf_counter() - began)}", flush=True)
    return 1 if errors or results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
