"""What the per-run containment costs: a warm `print("hi")` with every layer, and with the cgroups off.

One runner per configuration, one after the other (two runners cannot share the
cluster at once); `WORKSHOP_CGROUPS=off` removes the control group per run (the
channel's budget and validation have no switch: they are always in force).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from .latency import LatencySample, sequential
from .runs import HI_CODE, POOL_SNIPPET, run_body
from .server import RunnerProcess

HI = run_body(POOL_SNIPPET, HI_CODE)
CONFIGURATIONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("every layer", {}),
    ("no per-run cgroup", {"WORKSHOP_CGROUPS": "off"}),
)


def measure(runs: int, warmup: int, cache_dir: Path, pool_size: int) -> dict[str, tuple[LatencySample, list[str]]]:
    """configuration -> (latency of a warm print("hi"), the layers the health endpoint listed)."""
    measured: dict[str, tuple[LatencySample, list[str]]] = {}
    for label, env in CONFIGURATIONS:
        with RunnerProcess(cache_dir, pool_size, log_name=f"bench-runner-layers-{len(measured)}.log") as runner:
            runner.env.update(env)
            runner.start()
            layers = list(runner.health()["isolation"]["layers"])
            with httpx.Client(base_url=runner.url, timeout=120.0) as client:

                def refill() -> float:
                    return runner.wait_until_full(client, timeout=30.0)

                latency = sequential(client, HI, label="hi", count=runs, warmup=warmup, before_each=refill)
            measured[label] = (latency, layers)
    return measured
