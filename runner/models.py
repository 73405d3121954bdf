"""The API's vocabulary as typed models: requests, every event kind, summaries, errors, health.

One source of truth: the runner builds its answers from these models, validates
what a sandbox sends against them where the bytes arrive, and generates the
OpenAPI document from them (`runner/openapi.py`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .changes import DatabaseChanges
from .round_trip import ROUND_TRIPS_MS

Status = Literal["ok", "error", "timeout", "killed", "cancelled"]
STATUSES: tuple[Status, ...] = ("ok", "error", "timeout", "killed", "cancelled")
Stream = Literal["stdout", "stderr"]

MAX_SNIPPET_ID = 200


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- requests ------------------------------------------------------------------------------------


class RunRequest(Model):
    """What the page sends: a published sample's id, and optionally edited code to run in its place."""

    snippet: str = Field(min_length=1, max_length=MAX_SNIPPET_ID, description="A snippet id from /api/snippets.")
    code: str | None = Field(default=None, description="Edited code; omit to run the published sample.")
    network_rtt_ms: float = Field(
        default=0,
        strict=True,
        json_schema_extra={"enum": list(ROUND_TRIPS_MS)},
        description="A simulated network round trip, in milliseconds, on each of the run's database connections "
        "(0: none, the local socket as it is).",
    )

    @field_validator("network_rtt_ms")
    @classmethod
    def _offered_round_trip(cls, value: float) -> float:
        if value not in ROUND_TRIPS_MS:
            raise ValueError(f"should be one of {', '.join(f'{v:g}' for v in ROUND_TRIPS_MS)} (milliseconds)")
        return value

    @field_validator("snippet", "code")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None:
            if "\0" in value:
                raise ValueError("must not contain NUL characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("contains unpaired surrogates") from None
        return value


# -- what a run's database connections did --------------------------------------------------------


class LatencyMs(Model):
    p50: float
    p95: float
    max: float


class ConnectionActivity(Model):
    id: int = Field(description="Connections numbered in the order they opened.")
    queries: int
    errors: int
    busy_seconds: float
    intervals: list[tuple[float, float]] = Field(description="Busy intervals, merged to at most 300 per connection.")
    errors_at: list[float]


class PhaseActivity(Model):
    name: str = Field(description="A function decorated with async_timed.")
    start: float
    end: float
    queries: int
    connections: int
    max_concurrency: int = Field(description="Most queries in flight at once during the phase.")


class StatementCount(Model):
    sql: str
    count: int


class QuerySample(Model):
    connection: int
    start: float
    end: float
    sql: str
    error: str | None


class QueryActivity(Model):
    """What the run's database connections did (times in seconds from the hand-over)."""

    count: int
    errors: int
    latency_ms: LatencyMs
    span: tuple[float, float]
    max_concurrency: int = Field(description="Most queries in flight at one instant.")
    connections: list[ConnectionActivity]
    phases: list[PhaseActivity]
    statements: list[StatementCount]
    sample: list[QuerySample]
    sample_truncated: bool
    dropped: int


# -- events --------------------------------------------------------------------------------------


class QueuedEvent(Model):
    """A run waiting for a slot (a burst): its place in line, sent again as it moves up, before `started`."""

    event: Literal["queued"] = "queued"
    position: int = Field(ge=1, description="The run's place in line: 1 starts next.")
    expected_wait: float = Field(ge=0, description="Rough seconds until it starts, from recent runs.")


class StartedEvent(Model):
    event: Literal["started"] = "started"
    id: str
    snippet: str


class OutputEvent(Model):
    event: Literal["output"] = "output"
    stream: Stream
    text: str
    t: float = Field(description="Seconds since the code was handed over.")


class TimingEvent(Model):
    event: Literal["timing"] = "timing"
    name: str = Field(max_length=200, description="The function decorated with async_timed.")
    seconds: float
    start: float = Field(description="When the call began, in seconds from the hand-over.")


class QueriesEvent(QueryActivity):
    event: Literal["queries"] = "queries"


class Duration(Model):
    """Seconds spent waiting for a slot, preparing the sandbox, running, and in all."""

    queue: float = Field(ge=0)
    setup: float = Field(ge=0)
    run: float = Field(ge=0)
    total: float = Field(ge=0)


class Resources(Model):
    """What the run's processes used, as its control group counted it."""

    memory_peak_bytes: int = Field(description="Most memory the run's processes held at once.")
    cpu_seconds: float = Field(description="CPU time of all the run's processes.")


class CheckVerdict(Model):
    """An exercise's check, judged on what the learner's code did (`runner/exercises.py`)."""

    exercise: str = Field(description="The exercise's id: its starter's snippet id.")
    passed: bool
    message: str = Field(description="For the learner: why it is solved, or what was seen and what to change.")
    judged: bool = Field(
        default=True, description="False when the check could not run or failed itself: the run was not judged."
    )


class CheckEvent(CheckVerdict):
    """Streamed after the learner's output, before `finished`, on every run of an exercise."""

    event: Literal["check"] = "check"


class Network(Model):
    """The network the run's database connections went through."""

    round_trip_ms: float = Field(description="The simulated round trip each answer paid (0: a local socket).")


class RunResult(Model):
    """How a run ended: the part of the summary that the streamed `finished` event carries."""

    id: str
    snippet: str
    edited: bool
    status: Status
    exit_code: int | None
    reason: str | None = Field(description="Why a run was stopped, in words a reader understands.")
    truncated: bool = Field(description="Whether output was cut at the output limit.")
    duration: Duration
    resources: Resources | None = Field(default=None, description="Null where runs have no control group.")
    changes: DatabaseChanges | None = Field(
        default=None, description="What the run committed to its database; null when it could not be read."
    )
    check: CheckVerdict | None = Field(default=None, description="The exercise's verdict; null for other samples.")
    network: Network = Field(default=Network(round_trip_ms=0), description="The network the run was given.")


class FinishedEvent(RunResult):
    event: Literal["finished"] = "finished"


class RunSummary(RunResult):
    """The answer to a run requested without streaming."""

    output: list[OutputEvent]
    timings: list[TimingEvent]
    queries: QueryActivity | None = Field(description="Null when the code ran no query.")


RunEvent = Annotated[
    QueuedEvent | StartedEvent | OutputEvent | TimingEvent | QueriesEvent | CheckEvent | FinishedEvent,
    Field(discriminator="event"),
]
run_event_adapter: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)


# -- what a sandbox's child may send on its events channel ----------------------------------------


class ChildReady(Model):
    event: Literal["ready"]
    pid: int


class ChildRunning(Model):
    event: Literal["running"]


ChildEvent = Annotated[ChildReady | ChildRunning | TimingEvent | QueriesEvent, Field(discriminator="event")]
child_event_adapter: TypeAdapter[ChildEvent] = TypeAdapter(ChildEvent)


class ChildVerdict(Model):
    """What a check's process sends (and only a check's process: a learner's run may not)."""

    event: Literal["verdict"]
    passed: bool
    message: str = Field(max_length=4000)
    detail: str | None = Field(max_length=4000, description="Why the check itself failed, for the log.")


# -- the other endpoints -------------------------------------------------------------------------


class ErrorBody(Model):
    error: str = Field(description="A stable code, e.g. bad_request, unknown_snippet, busy.")
    detail: str = Field(description="What went wrong, for a person.")


class SnippetInfo(Model):
    id: str
    title: str
    path: str
    sha256: str


class SnippetList(Model):
    snippets: list[SnippetInfo]


class PostgresHealth(Model):
    kind: str = Field(description="`embedded` (the runner's own cluster) or `external` (WORKSHOP_DATABASE_URL).")
    healthy: bool = Field(description="False from a failed check until the watchdog sees PostgreSQL answer again.")


class PoolHealth(Model):
    size: int = Field(description="How many sandboxes the pool keeps warm.")
    ready: int
    busy: int
    target: int = Field(
        0, description="Sandboxes the pool aims to keep ready now: its size, or more after recent demand (a burst)."
    )
    preparing: int = Field(0, description="Sandboxes being prepared now.")


class ClientShare(Model):
    """What one client may take: runs at once, runs waiting, run time per minute (0: unlimited)."""

    per_client: int
    client_queue: int
    run_seconds_per_minute: float


class RunsHealth(Model):
    running: int
    waiting: int
    max_concurrent: int
    max_concurrent_rule: str = Field(description="How max_concurrent was derived, or the setting that fixed it.")
    max_queue: int
    per_client: ClientShare


class RunLimits(Model):
    """What one run may use."""

    memory_bytes: int
    processes: int
    cpus: float
    output_bytes: int
    seconds: float


class CloneSpaceHealth(Model):
    """The RAM-backed folder of run databases (bytes)."""

    location: str
    ceiling: int
    enforced: bool = Field(description="A tmpfs of exactly `ceiling` bytes is mounted there.")
    reserved: int
    used: int
    databases: int
    on_disk: int = Field(description="Run databases cloned onto disk for want of room.")


class DatabaseBounds(Model):
    """What a run may spend inside PostgreSQL."""

    size_limit_bytes: int
    memory_limit_bytes: int
    backend_memory: str | None = Field(description="The cgroup version of the backends' groups, or null.")
    backend_memory_missing: str | None = Field(description="Why backends have no memory group, if they have none.")
    clone_space: CloneSpaceHealth | None


class IsolationHealth(Model):
    """The launcher and the layers in force; further keys describe limits as the runner learns them."""

    model_config = ConfigDict(extra="allow")

    launcher: str
    layers: list[str]
    missing: list[str] = Field(description="Layers this host cannot provide.")
    cgroups: str | None = Field(default=None, description="The cgroup version runs are limited with, if any.")
    limits: RunLimits | None = None
    database: DatabaseBounds | None = None


class HealthCause(Model):
    """One part that keeps the runner from being fully ready."""

    part: Literal["postgres", "sandbox_start", "clone_space", "isolation"]
    detail: str
    blocking: bool = Field(description="True when runs cannot be served until it is resolved (health is 503).")


class Health(Model):
    """The answer of /api/health: 200 while runs can be served here, 503 otherwise.

    `starting` and `down` (stopping) are 503; `draining` (after SIGTERM, running runs finish) is 503;
    `degraded` is 503 when a cause is blocking (PostgreSQL, sandbox start, clone space) and 200 when
    only an isolation layer is missing; `ready` is 200.
    """

    status: Literal["starting", "ready", "draining", "degraded", "down"]
    causes: list[HealthCause] = Field(default_factory=list, description="What to blame; empty when ready.")
    version: str
    postgres: PostgresHealth
    pool: PoolHealth
    runs: RunsHealth
    isolation: IsolationHealth
    editing: bool = Field(description="Whether edited code is accepted.")
    public: bool


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


MAX_NAMED, MAX_NAME = 10, 80  # a hostile body may hold thousands of long keys


def explain(error: ValidationError) -> str:
    """A validation error as one sentence a person can act on, e.g. the detail of a 400.

    Unknown fields come first (a misspelt field is also a missing one), then each
    other problem as `"field" should ...`; the offending values are left out, as
    they may be large or hostile.
    """
    problems = error.errors(include_url=False, include_input=False)
    unknown = sorted(_where(p["loc"]) for p in problems if p["type"] == "extra_forbidden")
    parts = [f"unknown field(s): {', '.join(unknown[:MAX_NAMED])}"] if unknown else []
    if len(unknown) > MAX_NAMED:
        parts[0] += f" and {len(unknown) - MAX_NAMED} more"
    for problem in problems:
        if problem["type"] == "extra_forbidden":
            continue
        where = _where(problem["loc"])
        phrase = _phrase(problem["type"], problem["msg"], problem.get("ctx"))
        if where:
            phrase = f'"{where}" {phrase}'
        elif phrase.startswith("should "):
            phrase = f"the value {phrase}"
        parts.append(phrase)
    return "; ".join(parts) or str(error)


def _where(loc: tuple[int | str, ...]) -> str:
    where = ".".join(str(part) for part in loc)
    return where if len(where) <= MAX_NAME else where[: MAX_NAME - 1] + "…"


def _phrase(kind: str, message: str, context: dict[str, Any] | None) -> str:
    if kind == "missing":
        return "is required"
    if kind == "value_error" and context and "error" in context:
        return str(context["error"])
    _, _, rest = message.partition(" ")
    if rest.startswith("should "):  # "Input should be a valid string" -> "should be a valid string"
        return rest
    return message[:1].lower() + message[1:]
