"""What /api/health says: one state of the runner, and the parts to blame when it is not ready.

A proxy or an orchestrator reads the HTTP status (200: send runs here; 503: do not);
an operator reads `status` and `causes`. Each cause names one part, so a sandbox that
will not start is not reported as PostgreSQL being down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

State = Literal["starting", "ready", "draining", "degraded", "down"]
Part = Literal["postgres", "sandbox_start", "clone_space", "isolation"]

RECENT_SECONDS = 60.0
"""How long a failure to prepare a run counts against health, unless a run is prepared meanwhile."""
SANDBOX_FAILURES = 1
"""Failed preparations in a row (the pool's, or a run's) that make sandbox start a cause."""


@dataclass(frozen=True)
class Cause:
    part: Part
    detail: str
    blocking: bool
    """True when runs cannot be served until it is resolved (health answers 503)."""


@dataclass
class Troubles:
    """Failures to prepare runs, remembered until a preparation works or they grow old."""

    seen: dict[str, tuple[float, str]] = field(default_factory=dict)

    def note(self, part: Part, detail: str) -> None:
        self.seen[part] = (time.monotonic(), detail)

    def cleared(self) -> None:
        """A run was prepared: whatever failed before works again."""
        self.seen.clear()

    def recent(self, part: Part) -> str | None:
        when_detail = self.seen.get(part)
        if when_detail is None or time.monotonic() - when_detail[0] > RECENT_SECONDS:
            return None
        return when_detail[1]


def assess(
    *,
    started: bool,
    stopping: bool,
    draining: bool,
    postgres_healthy: bool,
    pool_failures: int,
    troubles: Troubles,
    missing_layers: list[str],
) -> tuple[State, list[Cause]]:
    """The runner's state and what to blame, from facts the runtime holds."""
    if stopping:
        return "down", []
    if not started:
        return "starting", []
    causes: list[Cause] = []
    if not postgres_healthy:
        causes.append(Cause("postgres", "PostgreSQL does not answer; the runner retries every second", True))
    sandbox = troubles.recent("sandbox_start")
    if pool_failures >= SANDBOX_FAILURES or sandbox:
        what = sandbox or f"{pool_failures} preparation(s) of a sandbox failed in a row"
        causes.append(Cause("sandbox_start", what, True))
    clone = troubles.recent("clone_space")
    if clone:
        causes.append(Cause("clone_space", clone, True))
    if missing_layers:
        detail = "sandboxes lack " + ", ".join(missing_layers) + " (see docs/operators/isolation.md)"
        causes.append(Cause("isolation", detail, False))
    if draining:
        return "draining", causes
    return ("degraded" if causes else "ready"), causes


def http_status(state: State, causes: list[Cause]) -> int:
    """200 while runs can be served here, 503 otherwise (a readiness probe takes the replica out)."""
    if state in {"starting", "draining", "down"} or any(cause.blocking for cause in causes):
        return 503
    return 200
