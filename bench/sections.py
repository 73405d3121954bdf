"""The printed sections: each benchmark's figures beside its reference figures, then the targets."""

from __future__ import annotations

import math
from collections.abc import Callable

from . import report
from .plan import Plan, Results, default_pool_size
from .report import Target, at_least, at_most, ms, num, secs
from .stats import median, ratio


def print_latency(plan: Plan, results: Results) -> None:
    report.heading(
        report.SEQUENTIAL,
        f"({plan.runs} runs each after {plan.warmup} warm-up, one keep-alive httpx client, loopback)",
    )
    rows = [["", "client p50", "client p95", "server queue", "setup", "run", "total", "errors"]]
    labels = {"hi": 'print("hi") (edited 03_pool)', "pool": "03_pool (published)"}
    modes = {"warm": f"warm pool {results.warm_size}", "cold": "cold, pool 0, fresh clone"}
    for name in ("hi", "pool"):
        for mode in ("warm", "cold"):
            sample = results.latency.get((name, mode))
            if sample is None:
                continue
            rows.append(
                [
                    f"{labels[name]}, {modes[mode]}",
                    ms(sample.p50),
                    ms(sample.p95),
                    ms(sample.server_median("queue")),
                    ms(sample.server_median("setup")),
                    ms(sample.server_median("run")),
                    ms(sample.server_median("total")),
                    str(sample.errors),
                ]
            )
    report.table(rows)
    print("  server columns are medians of the summaries' duration {queue, setup, run, total}")
    for name in ("hi", "pool"):
        warm, cold = results.latency.get((name, "warm")), results.latency.get((name, "cold"))
        if warm and cold:
            waits = sorted(warm.refill_waits)
            print(
                f"  warm/cold p50, {labels[name]}: {num(ratio(warm.p50, cold.p50))}"
                f"   (untimed wait for the refill before each warm run: median {ms(waits[len(waits) // 2])})"
            )
        for sample in (warm, cold):
            if sample and sample.errors:
                print(f"  first error of {labels[name]}: {sample.first_error()}")
    print(f"  default WORKSHOP_POOL_SIZE={default_pool_size()} (the runner's); the warm rows use {results.warm_size}")
    print(f"  {report.PEERS}")
    print(f"  {report.MACHINE}", flush=True)


def print_load(plan: Plan, results: Results) -> None:
    report.heading(
        report.LOAD,
        f"({plan.load_clients} closed-loop clients, {plan.load_seconds:g} s, 03_pool published, loopback; "
        "each answer must be a finished run or a 429)",
    )
    sample = results.load
    if sample is None:
        print("  not measured")
        return
    server_errors = sum(1 for r in sample.results if r.http_status >= 500)
    other = sample.errors - server_errors
    report.table(
        [
            ["answers", "finished ok", "429 busy", "5xx", "other errors", "runs/s", "client p95"],
            [
                str(len(sample.results)),
                str(sample.completed),
                str(sample.busy),
                str(server_errors),
                str(other),
                num(sample.runs_per_second),
                ms(sample.p95),
            ],
        ]
    )
    if sample.errors:
        print(f"  first error: {sample.first_error()}")
    print("  leaks (processes, databases, temp dirs) after load are checked by tests/test_load.py", flush=True)


def print_throughput(plan: Plan, results: Results) -> None:
    report.heading(
        report.THROUGHPUT,
        f"({plan.clients} closed-loop clients, {plan.throughput_seconds:g} s, 03_pool published, "
        f"warm pool {results.warm_size})",
    )
    sample = results.throughput
    if sample is None:
        print("  not measured")
        return
    report.table(
        [
            ["runs/s", "completed", "429 busy", "errors", "client p50", "client p95", "queue", "setup", "run"],
            [
                num(sample.runs_per_second),
                str(sample.completed),
                str(sample.busy),
                str(sample.errors),
                ms(sample.p50),
                ms(sample.p95),
                ms(sample.server_median("queue")),
                ms(sample.server_median("setup")),
                ms(sample.server_median("run")),
            ],
        ]
    )
    print(f"  runner defaults in force: {results.admission}; a 429 is counted apart from errors")
    print(f"  elapsed {secs(sample.elapsed)} (requests stop at the deadline; those in flight finish and count)")
    print("  queue/setup/run are server medians; setup > 0 means the pool ran dry and runs prepared their own")
    if sample.errors:
        print(f"  first error: {sample.first_error()}")
    print(f"  {report.PEERS}", flush=True)


def print_fidelity(plan: Plan, results: Results) -> None:
    report.heading(
        report.FIDELITY,
        f"(chapter_05/04_pool_vs_sequential, 10,000 queries, pool of 6; median of {plan.fidelity_repetitions})",
    )
    rows = [["", "sequential", "concurrent", "seq/conc", "per repetition", "errors"]]
    for label, comparison in (
        ("through the runner (sandbox, unix socket)", results.via_runner),
        ("direct vs `runner db` (TCP 127.0.0.1)", results.via_direct),
    ):
        if comparison is None:
            rows.append([label, "n/a", "n/a", "n/a", "", "not measured"])
            continue
        rows.append(
            [
                label,
                secs(median(comparison.sequential)),
                secs(median(comparison.concurrent)),
                f"{num(comparison.median_ratio)}x",
                " ".join(num(r) for r in comparison.ratios),
                str(len(comparison.errors)),
            ]
        )
    rows.append(["book", "21.80 s", "4.80 s", "4.54x", "", ""])
    report.table(rows)
    print(f"  difference of the median ratios, runner vs direct: {_percent(fidelity_difference(results))}")
    if results.via_runner and results.via_direct:
        fastest = 100 * (ratio(results.via_runner.fastest_ratio, results.via_direct.fastest_ratio) - 1)
        print(
            f"  ratio of the fastest halves (steadier under load): runner {num(results.via_runner.fastest_ratio)}x, "
            f"direct {num(results.via_direct.fastest_ratio)}x, difference {_percent(fastest)}"
        )
    for comparison in (results.via_runner, results.via_direct):
        if comparison and comparison.errors:
            print(f"  first error: {comparison.errors[0]}")
    print(f"  {report.BOOK}", flush=True)


def print_startup(results: Results) -> None:
    sample = results.startup
    report.heading(
        report.STARTUP,
        f"(spawn of `python -m runner serve` to /api/health 200 with pool ready == {results.warm_size}, cache warm)",
    )
    if sample is None:
        print("  not measured")
        return
    print(f"  priming start {secs(sample.priming)} (unmeasured)")
    print(f"  measured starts: {', '.join(secs(s) for s in sample.starts)}; median {secs(sample.median)}")
    print(f"  shutdown after SIGTERM: {', '.join(secs(s) for s in sample.stops)}", flush=True)


def print_seccomp(plan: Plan, results: Results) -> None:
    report.heading(
        report.SECCOMP,
        f"(WORKSHOP_SECCOMP on vs off; warm pool {results.warm_size}, {plan.runs} runs each after {plan.warmup} "
        f"warm-up; {plan.seccomp_starts} bare sandboxes each, alternating)",
    )
    sample = results.seccomp
    if sample is None:
        print("  not measured")
        return
    on, off = sample.hi.get("on"), sample.hi.get("off")
    rows = [["", "filter on", "filter off", "on/off"]]

    def row(label: str, with_filter: float, without: float, show: Callable[[float], str]) -> None:
        rows.append([label, show(with_filter), show(without), num(ratio(with_filter, without))])

    nan = math.nan
    row('print("hi") warm, client p50', on.p50 if on else nan, off.p50 if off else nan, ms)
    row('print("hi") warm, client p95', on.p95 if on else nan, off.p95 if off else nan, ms)
    row(
        'print("hi") warm, server run',
        on.server_median("run") if on else nan,
        off.server_median("run") if off else nan,
        ms,
    )
    row("bare sandbox start + child imports", sample.start_median("on"), sample.start_median("off"), ms)
    for call, label in (("getppid", "bare sandbox, os.getppid()"), ("socket", "bare sandbox, socket() + close()")):
        row(label, sample.call_ns("on", call), sample.call_ns("off", call), lambda ns: f"{num(ns, 0)} ns")
    report.table(rows)
    print(
        f"  the health endpoint's layers: seccomp {sample.layers.get('on', 'n/a')} with on, "
        f"{sample.layers.get('off', 'n/a')} with off; program {sample.program_bytes} bytes of BPF"
    )
    print("  bare sandbox rows: bubblewrap + the child's Python without runner or database, medians")
    for mode, latency in sample.hi.items():
        if latency.errors:
            print(f"  first error with the filter {mode}: {latency.first_error()}", flush=True)


def print_layers(plan: Plan, results: Results) -> None:
    report.heading(
        report.CONTAINMENT,
        f'(warm print("hi"), pool {results.warm_size}, {plan.runs} runs each after {plan.warmup} warm-up; '
        "one runner per configuration, one after the other)",
    )
    if not results.layers:
        print("  not measured")
        return
    base = results.layers.get("every layer")
    rows = [["", "client p50", "client p95", "server run", "p50 vs every layer"]]
    for label, (sample, _) in results.layers.items():
        difference = sample.p50 - base[0].p50 if base else math.nan
        rows.append([label, ms(sample.p50), ms(sample.p95), ms(sample.server_median("run")), ms(difference)])
    report.table(rows)
    for label, (_, layers) in results.layers.items():
        print(f"  {label}: the health endpoint listed {', '.join(layers)}")
    print("  target: the per-run cgroup adds at most 2 ms to the warm p50", flush=True)


POOL_CONNECTIONS = 6
"""Connections chapter_05/03_pool opens (a pool of min_size 6), each a handshake with a new backend."""
FLOOR_PARTS = ("fork + unshare", "database clone", "connection handshake", "drop")
"""What every run must pay at the least with a fork server: the parts the floor sums."""


def print_burst(plan: Plan, results: Results) -> None:
    report.heading(
        report.BURST,
        f"(03_pool published, open-loop: each run on its own connection, sent evenly over the window, "
        f"warm pool {results.warm_size}; a 429 is a refusal, never retried)",
    )
    if not results.bursts:
        print("  not measured")
        return
    rows = [["", "ok", "refused", "errors", "p50", "p95", "last answer", "goal"]]
    for sample in results.bursts:
        goal = "0 refused, p95 <= 600 ms" if sample.count <= 30 else "0 refused"
        rows.append(
            [
                f"{sample.count} runs within {sample.window:g} s",
                str(sample.completed),
                str(sample.refused),
                str(sample.errors),
                ms(sample.p50),
                ms(sample.p95),
                secs(sample.last_answer),
                goal,
            ]
        )
    report.table(rows)
    print("  p50/p95: client latency of the runs that finished ok; last answer: from the first click")
    for sample in results.bursts:
        print(
            f"  {sample.count} runs: {sample.queued} waited in line and were told their place "
            f"(deepest: {sample.deepest})"
        )
    for sample in results.bursts:
        if sample.errors:
            print(f"  first error ({sample.count} runs): {sample.first_error()}")
    paced = results.paced
    if paced is not None:
        print(
            f'  one reader, print("hi") every {paced.interval * 1000:g} ms ({len(paced.results)} runs): '
            f"p50 {ms(paced.p50)}, p95 {ms(paced.p95)}, errors {paced.errors}; goal p95 < 20 ms, p50 <= 5 ms"
        )
        if paced.errors:
            print(f"  first error: {paced.first_error()}")
    print(f"  {report.BURST_BEFORE}", flush=True)


def print_floor(results: Results) -> None:
    report.heading(report.FLOOR, "(CPU of the runner, its PostgreSQL and the sandboxes together)")
    tp = results.throughput
    print(
        f"  at saturation ({tp.clients if tp else 'n/a'} clients, {num(tp.runs_per_second) if tp else 'n/a'} runs/s): "
        f"{ms(results.saturation_cpu)} of CPU per run; goal <= 50 ms (method: {results.cpu_method})"
    )
    floor = results.floor
    if floor is None:
        print("  floor not measured")
        return
    rows = [["part (medians, each alone)", "wall", "CPU"]]
    for name, part in floor.parts.items():
        rows.append([name, ms(part.wall_median), ms(part.cpu_median)])
    report.table(rows)
    parts = floor.parts
    least = sum(parts[n].cpu_median for n in FLOOR_PARTS if n in parts)
    later = "connection handshake, a later one"
    handshake = parts[later].cpu_median if later in parts else math.nan
    pool_floor = least + (POOL_CONNECTIONS - 1) * handshake
    print(
        f"  floor of a run (fork + namespaces, clone, one handshake, drop): {ms(least)} of CPU, before the "
        f"sample's own work and the HTTP answer; 03_pool opens {POOL_CONNECTIONS} connections: {ms(pool_floor)}"
    )
    print(
        f"  saturation measured {ms(results.saturation_cpu)} a run of 03_pool, "
        f"{num(ratio(results.saturation_cpu, pool_floor))}x its floor; the goal (50 ms) is "
        f"{num(ratio(0.050, pool_floor))}x that floor"
    )
    print(f"  the runner's parts' CPU read by {floor.method}", flush=True)


def fidelity_difference(results: Results) -> float:
    """Percent by which the runner's ratio differs from the direct one."""
    if results.via_runner is None or results.via_direct is None:
        return float("nan")
    return 100 * (ratio(results.via_runner.median_ratio, results.via_direct.median_ratio) - 1)


def targets(results: Results) -> list[Target]:
    hi_warm, hi_cold = results.latency.get(("hi", "warm")), results.latency.get(("hi", "cold"))
    nan = float("nan")
    warm_p50 = hi_warm.p50 if hi_warm else nan
    warm_p95 = hi_warm.p95 if hi_warm else nan
    warm_cold = ratio(warm_p50, hi_cold.p50) if hi_cold else nan
    tp = results.throughput
    rate = tp.runs_per_second if tp else nan
    difference = fidelity_difference(results)
    start = results.startup.worst if results.startup and results.startup.starts else nan
    tp_met = at_least(rate, 6.0)
    return [
        Target('print("hi") warm p50', "<= 20 ms", ms(warm_p50), at_most(warm_p50, 0.020)),
        Target('print("hi") warm p95', "<= 60 ms", ms(warm_p95), at_most(warm_p95, 0.060)),
        Target('print("hi") warm/cold p50', "<= 0.15", num(warm_cold), at_most(warm_cold, 0.15)),
        Target(
            "throughput, 8 clients",
            ">= 6 runs/s, 0 errors",
            f"{num(rate)} runs/s, {tp.errors if tp else 'n/a'} errors",
            None if tp_met is None or tp is None else tp_met and tp.errors == 0,
        ),
        Target("fidelity seq/conc ratio", "within 10%", _percent(difference), at_most(abs(difference), 10.0)),
        Target("start to ready (worst of starts)", "<= 3 s", secs(start), at_most(start, 3.0)),
        *burst_targets(results),
    ]


def burst_targets(results: Results) -> list[Target]:
    """The workshop burst's goals (30 runs in 1 s, 60 in 2 s, saturation, CPU per run, a paced reader)."""
    nan = float("nan")
    found: list[Target] = []
    for sample in results.bursts:
        label = f"burst: {sample.count} runs within {sample.window:g} s"
        refused = sample.refused + sample.errors
        if sample.count <= 30:
            met = at_most(sample.p95, 0.6)
            found.append(
                Target(
                    label,
                    "0 refused, p95 <= 600 ms",
                    f"{refused} refused or failed, p95 {ms(sample.p95)}",
                    None if met is None else met and refused == 0,
                )
            )
        else:
            found.append(Target(label, "0 refused", f"{refused} refused or failed", refused == 0))
    tp = results.throughput
    rate = tp.runs_per_second if tp else nan
    found.append(Target("saturation, 03_pool", ">= 35 runs/s", f"{num(rate)} runs/s", at_least(rate, 35.0)))
    cpu = results.saturation_cpu
    found.append(Target("CPU per run at saturation", "<= 50 ms", ms(cpu), at_most(cpu, 0.050)))
    paced = results.paced
    paced_p95 = paced.p95 if paced else nan
    found.append(Target('print("hi") every 70 ms, p95', "< 20 ms", ms(paced_p95), at_most(paced_p95, 0.020)))
    hi_warm = results.latency.get(("hi", "warm"))
    warm_p50 = hi_warm.p50 if hi_warm else nan
    found.append(Target('print("hi") warm p50 (burst issue)', "<= 5 ms", ms(warm_p50), at_most(warm_p50, 0.005)))
    return found


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f}%"
