"""Expected outputs: what varies is masked, nothing else; what may be recorded, and what a stale one says."""

from __future__ import annotations

import pytest

from runner.expected import expected_status, normalise, resolve, stale_message, wrong_ending
from runner.lessons import meant_to_fail


def test_timings_addresses_and_versions_are_masked() -> None:
    raw = (
        "starting <function main at 0x7f2bf04804a0> with args () {}\n"
        "finished <function main at 0x7f2bf04804a0> in 4.5070 second(s)\n"
        "Connected! Postgres version is ServerVersion(major=18, minor=0, micro=6, releaselevel='final', serial=0)\n"
    )
    assert normalise(raw) == (
        "starting <function main at 0x...> with args () {}\n"
        "finished <function main at 0x...> in N.NNNN second(s)\n"
        "Connected! Postgres version is ServerVersion(...)\n"
    )


def test_everything_else_is_kept() -> None:
    text = "query 1 succeeded: SELECT 109\nbrand 9999 present after rollback: False\n"
    assert normalise(text) == text


# -- what may be recorded ---------------------------------------------------------

CLEAN = {"status": "ok", "exit_code": 0, "reason": None}
CRASHED = {"status": "error", "exit_code": 1, "reason": None}
TIMED_OUT = {"status": "timeout", "exit_code": -9, "reason": "stopped after the 30 s time limit"}


def test_the_marker_is_a_comment_line_of_its_own() -> None:
    assert meant_to_fail('"""Doc."""\n# expect: error\nraise SystemExit(1)\n')
    assert meant_to_fail("#expect:error\n")
    assert not meant_to_fail('print("# expect: error")\n')
    assert not meant_to_fail("x = 1  # expect: error\n")
    assert expected_status("# expect: error\n") == "error"
    assert expected_status("print(1)\n") == "ok"


def test_a_crash_is_refused_with_the_way_out() -> None:
    problem = wrong_ending("chapter_06/01_tasks", "print(1)\n", CRASHED)
    assert problem is not None
    assert "did not run cleanly (status error, exit code 1)" in problem
    assert "add a line `# expect: error` to code/chapter_06/01_tasks.py" in problem
    assert wrong_ending("chapter_06/01_tasks", "print(1)\n", CLEAN) is None


def test_a_sample_meant_to_fail_must_fail() -> None:
    marked = "# expect: error\nraise ValueError\n"
    assert wrong_ending("chapter_06/02_boom", marked, CRASHED) is None
    problem = wrong_ending("chapter_06/02_boom", marked, CLEAN)
    assert problem is not None and "marked `# expect: error` but its run ended with status ok" in problem


def test_a_timeout_is_never_recorded_even_when_marked() -> None:
    for source in ("print(1)\n", "# expect: error\n"):
        problem = wrong_ending("chapter_06/03_slow", source, TIMED_OUT)
        assert problem is not None and "did not finish" in problem and "expect: error" not in problem


def test_a_stale_output_says_which_command_records_it() -> None:
    message = stale_message("chapter_05/03_pool", "old line\n", "new line\n")
    assert "chapter_05/03_pool: the expected output is stale" in message
    assert "`python -m runner expected --write chapter_05/03_pool`" in message
    assert "-old line\n+new line\n" in message
    missing = stale_message("chapter_05/03_pool", None, "new line\n")
    assert "has no expected output" in missing and "--write chapter_05/03_pool" in missing


def test_targets_are_ids_lessons_or_paths() -> None:
    every = resolve([])
    assert every and all(sid.startswith("chapter_") for sid in every)
    assert resolve(["chapter_05/03_pool"]) == ["chapter_05/03_pool"]
    assert resolve(["code/chapter_05/03_pool.py", "chapter_05/03_pool"]) == ["chapter_05/03_pool"]
    assert resolve(["chapter_05"]) == [sid for sid in every if sid.startswith("chapter_05/")]
    with pytest.raises(ValueError, match="neither a sample nor a lesson"):
        resolve(["chapter_05/99_nope"])
    with pytest.raises(ValueError):
        resolve(["chapter_0"])  # a prefix of a lesson's name is not the lesson
