"""Exercises: a sample with a check that judges what the learner's code did.

An exercise is a starter `code/chapter_NN/exNN_name.py` with a check beside it,
`exNN_name_check.py` (and a solution, `exNN_name_solution.py`); see
`runner/lessons.py` for the files and `runner/checking.py` for what a check is given.

Every run of an exercise's snippet, edited or not, is followed by its check:

1. the learner's code runs with the gate relaying its connections through a wire
   record (`runner/wire.py`), so its queries are recorded outside its reach;
2. once it ended, every process of the run is gone (the sandbox kills its group)
   and its server sessions are ended, so nothing of the learner's runs on;
3. the check runs in a second child of the same sandbox (`Sandbox.check`), with
   its source read here, by the runner, and the result recorded here.

The verdict comes back as a `check` event and in the summary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import lessons
from .changes import DatabaseChanges
from .errors import WorkshopError
from .isolation import Limits
from .models import CheckVerdict, OutputEvent, TimingEvent
from .sandbox import CheckJob, Outcome, Sandbox
from .settings import REPO_ROOT
from .snippets import NOTEBOOK_PREFIX, Snippet
from .wire import WireRecord

log = logging.getLogger("runner.exercises")

CHECK_TIMEOUT = 10.0
"""Seconds a check may take (its queries on the run's database included)."""
SETTLE_TIMEOUT = 3.0
"""Seconds the run's server sessions may take to end once asked, before the check is refused."""
COULD_NOT_RUN = "The check could not run, so this run is not judged"


@dataclass(frozen=True)
class Exercise:
    id: str
    """The starter's snippet id, e.g. `chapter_05/ex01_concurrent_lookups`."""
    check: Path

    def check_source(self) -> str:
        return self.check.read_text(encoding="utf-8")


def exercise_of(snippet: Snippet, root: Path = REPO_ROOT) -> Exercise | None:
    """The exercise whose starter the snippet shows (on the page or in the notebook), or None."""
    sample = root / snippet.path
    if not lessons.is_sample(sample) or not lessons.is_exercise(sample):
        return None
    return Exercise(snippet.id.removeprefix(NOTEBOOK_PREFIX), lessons.check_path(sample))


def result_record(
    outcome: Outcome, output: list[OutputEvent], timings: list[TimingEvent], record: WireRecord
) -> dict[str, object]:
    """What the check is told about the run (`runner.checking.Result.from_record` reads it)."""
    return {
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "stdout": "".join(e.text for e in output if e.stream == "stdout"),
        "stderr": "".join(e.text for e in output if e.stream == "stderr"),
        "seconds": round(outcome.run_seconds, 6),
        "timings": [{"name": t.name, "start": t.start, "seconds": t.seconds} for t in timings],
        "wire": record.as_dict(),
    }


STRUCTURE_KINDS = ("table ", "index ", "sequence ", "type ")
"""What a run may create and still be judged: new relations cannot hide the course's (no schema
can be created, and a template object renamed or replaced shows as dropped)."""


def altered_structure(changes: DatabaseChanges | None) -> str | None:
    """Why the database can no longer be trusted to show what the code did, or None.

    A check reads the course's tables; a run that dropped, renamed or replaced one, or
    added a view, function, trigger, rule, policy, column or setting, could make them
    show rows that were never written (a view in place of a table, a policy hiding rows,
    a setting changing what a name means).
    """
    if changes is None:
        return "the database's structure could not be read after the run"
    if changes.dropped:
        return f"your code dropped, renamed or altered {', '.join(changes.dropped[:3])}"
    added = [name for name in changes.created if not name.startswith(STRUCTURE_KINDS)]
    if added:
        return f"your code added {', '.join(added[:3])}"
    return None


async def judge(
    exercise: Exercise,
    sandbox: Sandbox,
    record: WireRecord,
    result: dict[str, object],
    limits: Limits,
    changes: DatabaseChanges | None,
) -> CheckVerdict:
    """Run the check once the learner's sessions have ended; a check that cannot run is not a pass."""
    altered = altered_structure(changes)
    if altered is not None:
        return CheckVerdict(
            exercise=exercise.id,
            passed=False,
            message=f"{altered[:1].upper()}{altered[1:]}. The check reads the course's tables as they were; "
            "run again without changing them (every run starts from a fresh database).",
            judged=False,
        )
    if not await record.settled(SETTLE_TIMEOUT):
        return CheckVerdict(
            exercise=exercise.id,
            passed=False,
            message=f"{COULD_NOT_RUN}: the program's database sessions did not end.",
            judged=False,
        )
    job = CheckJob(
        source=exercise.check_source(),
        filename=str(exercise.check.relative_to(REPO_ROOT)),
        result=result,
        timeout=CHECK_TIMEOUT,
        limits=limits,
    )
    try:
        verdict = await sandbox.check(job)
    except WorkshopError as error:
        log.warning("check of %s could not run: %s", exercise.id, error)
        return CheckVerdict(exercise=exercise.id, passed=False, message=f"{COULD_NOT_RUN}: {error}.", judged=False)
    if verdict.detail:
        log.warning("the check of %s failed:\n%s", exercise.id, verdict.detail)
    return CheckVerdict(
        exercise=exercise.id, passed=verdict.passed, message=verdict.message, judged=verdict.detail is None
    )
