"""How the figures are printed: section headings, units, reference figures and targets.

The headings are constants because the smoke test checks that each section
printed; the reference figures come from DESIGN.md ("Reference figures") and the
targets from the issue, so every measured figure stands beside what it is judged by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEADINGS = (
    "== 1. Sequential latency ==",
    "== 2. Throughput ==",
    "== 3. Fidelity ==",
    "== 4. Start to ready ==",
    "== 5. Load ==",
    "== 6. Seccomp cost ==",
    "== 7. Containment cost ==",
    "== 8. Workshop burst ==",
    "== 9. CPU per run and the floor ==",
    "== Targets ==",
)
SEQUENTIAL, THROUGHPUT, FIDELITY, STARTUP, LOAD, SECCOMP, CONTAINMENT, BURST, FLOOR, TARGETS = HEADINGS

PEERS = "peers per run: Codapi (Docker per run) 250-540 ms, Piston 154 ms, Judge0 ~500 ms"
BOOK = "book (pool of 6): sequential 21.8 s / concurrent 4.8 s = 4.5x"
BURST_BEFORE = (
    "before the burst work (one client, defaults): 30 in 1 s: 30 ok, p95 2.34 s; 60 in 2 s: 44 ok, 16 refused, "
    "p95 3.31 s"
)
MACHINE = "design's 2-core figures: import asyncpg ~100 ms, bubblewrap ~5 ms, clone of the seeded db 50-150 ms"


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.2f} s"


def num(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def heading(title: str, note: str = "") -> None:
    print()
    print(f"{title} {note}".rstrip(), flush=True)


def table(rows: list[list[str]]) -> None:
    """Left-align the first column, right-align the rest."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  " + "  ".join(cells).rstrip())
    print(flush=True)


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None
    """None when the figure could not be measured (a failed section)."""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "not measured"}[self.met]


def at_most(value: float, limit: float) -> bool | None:
    return None if math.isnan(value) else value <= limit


def at_least(value: float, limit: float) -> bool | None:
    return None if math.isnan(value) else value >= limit


def print_targets(targets: list[Target]) -> None:
    heading(TARGETS, "(from the issue)")
    table([["target", "goal", "measured", "verdict"]] + [[t.name, t.goal, t.measured, t.verdict] for t in targets])
    met = sum(1 for t in targets if t.met)
    print(f"  {met} of {len(targets)} targets met", flush=True)
