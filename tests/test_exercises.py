"""Every exercise, through the real runner: its solution passes, its starter and its typical wrong answers do not.

The exercises are discovered (a starter `code/<lesson>/exNN_name.py` whose
`exNN_name_check.py` sits beside it), and so are their test data in
`tests/exercises/<lesson>/exNN_name/`: `starter.message`, a part of the message the
unedited starter must get, and `wrong_*.py`, wrong answers whose first line is
`# message: <a part of the message it must get>`. Each run is an ordinary run of the
exercise's snippet, with the code edited where it is not the starter; the verdict is
the `check` object of the run's summary (EXERCISES.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from runner import lessons
from runner.settings import REPO_ROOT

from .conftest import LiveRunner, output_text

DATA = REPO_ROOT / "tests" / "exercises"
STARTERS = [p for p in lessons.sample_paths(REPO_ROOT) if lessons.is_exercise(p)]
EXERCISE_IDS = [lessons.snippet_id(REPO_ROOT, p) for p in STARTERS]
WRONG = [(sid, path) for sid in EXERCISE_IDS for path in sorted((DATA / sid).glob("wrong_*.py"))]


def wrong_id(case: tuple[str, Path]) -> str:
    return f"{case[0]}/{case[1].stem}"


def verdict(live_runner: LiveRunner, exercise: str, code: str | None = None) -> dict[str, Any]:
    """The `check` object of one run of the exercise's snippet (the starter when `code` is None)."""
    response = live_runner.run(exercise, code=code)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert "check" in summary, f"the summary carries no `check` (the exercise machinery of EXERCISES.md): {summary}"
    check = summary["check"]
    assert isinstance(check, dict), f"no verdict for {exercise}: {summary}"
    assert check["exercise"] == exercise
    assert check["message"], check
    check["output"] = output_text(summary)
    return check


def expected_part(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# message: "), f"{path}: the first line must be `# message: <part of the message>`"
    return first.removeprefix("# message: ").strip()


def test_exercises_are_found() -> None:
    assert len(EXERCISE_IDS) >= 8
    for sid in EXERCISE_IDS:
        assert (REPO_ROOT / "code" / f"{sid}_solution.py").is_file(), sid
        assert (DATA / sid / "starter.message").is_file(), sid
        assert len([case for case in WRONG if case[0] == sid]) >= 2, f"{sid}: two wrong answers or more"


@pytest.mark.parametrize("exercise", EXERCISE_IDS)
def test_the_solution_passes(live_runner: LiveRunner, exercise: str) -> None:
    solution = (REPO_ROOT / "code" / f"{exercise}_solution.py").read_text(encoding="utf-8")
    check = verdict(live_runner, exercise, solution)
    assert check["passed"] is True, f"{check['message']}\n--- output:\n{check['output']}"
    assert check["message"].startswith("Solved")


@pytest.mark.parametrize("exercise", EXERCISE_IDS)
def test_the_starter_fails_with_its_message(live_runner: LiveRunner, exercise: str) -> None:
    part = (DATA / exercise / "starter.message").read_text(encoding="utf-8").strip()
    check = verdict(live_runner, exercise)
    assert check["passed"] is False, f"the starter solves {exercise}: {check['message']}"
    assert part in check["message"], f"{part!r} not in {check['message']!r}\n--- output:\n{check['output']}"


@pytest.mark.parametrize("case", WRONG, ids=wrong_id)
def test_a_wrong_answer_fails_with_a_message_that_helps(live_runner: LiveRunner, case: tuple[str, Path]) -> None:
    exercise, path = case
    part = expected_part(path)
    check = verdict(live_runner, exercise, path.read_text(encoding="utf-8"))
    assert check["passed"] is False, f"{path.name} solves {exercise}: {check['message']}"
    assert part in check["message"], f"{part!r} not in {check['message']!r}\n--- output:\n{check['output']}"


@pytest.mark.parametrize("exercise", EXERCISE_IDS)
def test_the_page_shows_the_task_graduated_hints_and_the_solution(exercise: str) -> None:
    """The contract's block (EXERCISES.md, 'The page'), in the lesson's page, in exercise order."""
    lesson = lessons.Lesson(REPO_ROOT, exercise.split("/")[0])
    page = lesson.page.read_text(encoding="utf-8")
    opening = f'<div class="workshop-exercise" data-exercise="{exercise}" markdown>'
    assert page.count(opening) == 1, f"{exercise}: no exercise block on docs/{lesson.page_uri}"
    start = page.index(opening)
    heading = page.rfind("\n### Exercise ", 0, start)
    number = int(exercise.split("/")[1][2:4])
    assert page[heading:start].startswith(f"\n### Exercise {number}: "), f"{exercise}: its heading is not right above"
    block = page[start : page.find("\n## ", start)]
    assert f'<div class="workshop-run" data-snippet="{exercise}" markdown>' in block
    assert f'--8<-- "{exercise}.py"' in block
    hints = [int(n) for n in re.findall(r'^\?\?\? hint "Hint (\d)"$', block, re.M)]
    assert hints in ([1, 2], [1, 2, 3]), f"{exercise}: hints {hints}"
    solution = block.index('??? success "Solution"')
    assert solution > block.index('??? hint "Hint'), "the solution comes after the hints"
    assert f'--8<-- "{exercise}_solution.py"' in block[solution:]
