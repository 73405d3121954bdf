"""The runner configurations, each measured in its own `python -m runner serve`, one at a time.

They share one cache directory (the cluster and the template are built once) and
so never overlap: each runner is stopped (SIGTERM, wait) before the next starts.
Only the fidelity configuration runs two servers at once, and those are two
different clusters: the runner's and the learners' database in its own cache.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from .burst import burst, paced
from .cpu import CpuAccount
from .fidelity import Comparison, LearnerDatabase, direct, through_runner
from .floor import measure as measure_floor_parts
from .latency import sequential
from .layers import measure as measure_layer_costs
from .plan import HI, POOL, Plan, Results
from .report import secs
from .seccomp import measure as measure_seccomp_settings
from .server import RunnerProcess, wait_for_cluster_lock
from .startup import measure_starts
from .throughput import sustain


def progress(text: str) -> None:
    print(f"  .. {text}", flush=True)


def measure_cold(plan: Plan, cache_dir: Path, results: Results) -> None:
    progress("cold path: runner with WORKSHOP_POOL_SIZE=0 WORKSHOP_DB_REUSE=off")
    # cold: nothing prepared and nothing reused, every run clones its database (a reused one costs ~20 ms less)
    with RunnerProcess(cache_dir, 0, settings={"WORKSHOP_DB_REUSE": "off"}) as runner:
        started = runner.start()
        health = runner.health()
        runs = health["runs"]
        isolation = health["isolation"]
        results.admission = f"max concurrent runs {runs['max_concurrent']}, max queue {runs['max_queue']}"
        print(
            f"  first start (cache possibly cold) {secs(started)}; runner settings in force: {results.admission}, "
            f"sandbox {isolation['launcher']} (missing layers: {', '.join(isolation['missing']) or 'none'})",
            flush=True,
        )
        with httpx.Client(base_url=runner.url, timeout=60.0) as client:
            for name, body in (("hi", HI), ("pool", POOL)):
                results.latency[name, "cold"] = sequential(
                    client, body, label=name, count=plan.runs, warmup=plan.warmup
                )


def measure_warm(plan: Plan, cache_dir: Path, results: Results) -> None:
    size = results.warm_size
    progress(f"warm pool: runner with WORKSHOP_POOL_SIZE={size}")
    cpu = CpuAccount()
    results.cpu_method = cpu.method
    try:
        _measure_warm(plan, cache_dir, results, cpu)
    finally:
        cpu.close()


def _measure_warm(plan: Plan, cache_dir: Path, results: Results, cpu: CpuAccount) -> None:
    size = results.warm_size
    with RunnerProcess(cache_dir, size, cpu=cpu) as runner:
        runner.start()
        with httpx.Client(base_url=runner.url, timeout=120.0) as client:

            def refill() -> float:
                return runner.wait_until_full(client, timeout=30.0)

            for name, body in (("hi", HI), ("pool", POOL)):
                results.latency[name, "warm"] = sequential(
                    client, body, label=name, count=plan.runs, warmup=plan.warmup, before_each=refill
                )
            progress(f"throughput: {plan.clients} clients for {plan.throughput_seconds:g} s")
            refill()
            used = cpu.seconds()
            results.throughput = sustain(runner.url, POOL, clients=plan.clients, seconds=plan.throughput_seconds)
            used = cpu.seconds() - used
            results.saturation_cpu = used / max(1, results.throughput.completed)
            progress(f"load: {plan.load_clients} clients for {plan.load_seconds:g} s")
            refill()
            results.load = sustain(runner.url, POOL, clients=plan.load_clients, seconds=plan.load_seconds)
            for count, window in plan.bursts:
                progress(f"burst: {count} runs within {window:g} s")
                refill()
                results.bursts.append(burst(runner.url, POOL, count=count, window=window))
            progress(f'paced: print("hi") every {plan.paced_interval * 1000:g} ms, {plan.paced_runs} runs')
            refill()
            results.paced = paced(client, HI, count=plan.paced_runs, interval=plan.paced_interval)


def measure_floor(plan: Plan, cache_dir: Path, results: Results) -> None:
    progress("floor: forks, interpreter starts, clones and handshakes, each alone")
    wait_for_cluster_lock(cache_dir, "runner-pg", timeout=60)
    results.floor = measure_floor_parts(
        cache_dir, forks=plan.floor_forks, starts=plan.floor_starts, clones=plan.floor_clones
    )


def measure_fidelity(plan: Plan, cache_dir: Path, learner_cache: Path, results: Results) -> None:
    """A warm runner and the learners' database side by side (two clusters), runs interleaved."""
    progress(f"fidelity: warm runner and learners' database, {plan.fidelity_repetitions} interleaved run(s) each")
    results.via_runner, results.via_direct = Comparison(), Comparison()
    with RunnerProcess(cache_dir, results.warm_size) as runner, LearnerDatabase(learner_cache) as database:
        runner.start()
        database.start()
        with httpx.Client(base_url=runner.url, timeout=120.0) as client:

            def refill() -> float:
                return runner.wait_until_full(client, timeout=30.0)

            for _ in range(plan.fidelity_repetitions):
                results.via_runner.extend(through_runner(client, 1, refill))
                results.via_direct.extend(direct(database.port, 1))


def measure_seccomp(plan: Plan, cache_dir: Path, results: Results) -> None:
    progress(f"seccomp cost: warm pool {results.warm_size} with WORKSHOP_SECCOMP=on, then off")
    results.seccomp = measure_seccomp_settings(
        plan.runs, plan.warmup, plan.seccomp_starts, cache_dir, results.warm_size
    )


def measure_startup(plan: Plan, cache_dir: Path, results: Results) -> None:
    progress(f"start to ready: 1 priming start, then {plan.starts} measured")
    results.startup = measure_starts(cache_dir, results.warm_size, plan.starts)


def measure_layers(plan: Plan, cache_dir: Path, results: Results) -> None:
    progress(f"containment cost: warm pool {results.warm_size} with every layer, then without per-run cgroups")
    results.layers = measure_layer_costs(plan.runs, plan.warmup, cache_dir, results.warm_size)
